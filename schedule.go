package refresh

import (
	"sync"
	"time"
	"weak"
)

// schedule sets the due flag of each published snapshot at its refresh
// time: one runtime timer for the whole engine, armed for the earliest
// refresh time of a heap of snapshots, instead of one timer per key (a
// timer costs ~130 bytes, and a heap slot 8). The flag is all the hot path
// reads; the refresh itself starts only when a request finds its token due
// (an idle key is never refreshed).
//
// The timer holds the schedule only weakly, so that an Engine dropped
// without Close, and what it holds, can be collected; the snapshots in the
// heap hold neither their entry nor the engine.
type schedule struct {
	mu      sync.Mutex  // protects the fields below and each snapshot's slot
	heap    []*snapshot // a min-heap by refreshAt
	timer   *time.Timer // fires at next; nil until first needed
	next    int64       // mono time the timer is armed for; 0 if not armed
	stopped bool        // by stop: nothing is scheduled any more
}

// add schedules s, whose refreshAt is set; one that is due already is
// marked due at once.
func (q *schedule) add(s *snapshot) {
	now := mono()
	at := s.refreshAt.Load()
	if at <= now {
		s.due.Store(due)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || s.slot != 0 {
		return
	}
	q.heap = append(q.heap, s)
	s.slot = int32(len(q.heap))
	q.up(len(q.heap) - 1)
	if q.next == 0 || at < q.next {
		q.arm(at - now)
	}
}

// remove takes s out of the schedule, if it is in it.
func (q *schedule) remove(s *snapshot) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s.slot == 0 {
		return
	}
	i, last := int(s.slot-1), len(q.heap)-1
	q.swap(i, last)
	q.heap[last] = nil
	q.heap = q.heap[:last]
	s.slot = 0
	if i < last {
		q.down(i)
		q.up(i)
	}
	if len(q.heap) == 0 {
		q.heap = nil // a million keys' heap is given back when they leave
	}
}

// fire marks the snapshots whose time has come as due, and arms the timer
// for the next.
func (q *schedule) fire() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.next = 0
	now := mono()
	for len(q.heap) > 0 && q.heap[0].refreshAt.Load() <= now {
		s := q.heap[0]
		last := len(q.heap) - 1
		q.swap(0, last)
		q.heap[last] = nil
		q.heap = q.heap[:last]
		s.slot = 0
		q.down(0)
		s.due.CompareAndSwap(notDue, due)
	}
	if len(q.heap) > 0 && !q.stopped {
		q.arm(q.heap[0].refreshAt.Load() - now)
	}
}

// arm sets the timer to fire in d. Called with mu held.
func (q *schedule) arm(d int64) {
	q.next = mono() + d
	if q.timer == nil {
		w := weak.Make(q)
		q.timer = time.AfterFunc(time.Duration(d), func() {
			if q := w.Value(); q != nil {
				q.fire()
			}
		})
		return
	}
	q.timer.Reset(time.Duration(d))
}

// stop ends the schedule: the timer stops, and nothing is marked due any
// more.
func (q *schedule) stop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	if q.timer != nil {
		q.timer.Stop()
	}
	for _, s := range q.heap {
		s.slot = 0
	}
	q.heap, q.next = nil, 0
}

func (q *schedule) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.heap)
}

func (q *schedule) less(i, j int) bool {
	return q.heap[i].refreshAt.Load() < q.heap[j].refreshAt.Load()
}

func (q *schedule) swap(i, j int) {
	q.heap[i], q.heap[j] = q.heap[j], q.heap[i]
	q.heap[i].slot, q.heap[j].slot = int32(i+1), int32(j+1)
}

func (q *schedule) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q *schedule) down(i int) {
	for n := len(q.heap); ; {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q.swap(i, m)
		i = m
	}
}
