package refresh

import (
	"sync"
	"sync/atomic"
)

// maxQueuedEvents bounds the events waiting for Config.OnEvent: beyond it,
// while OnEvent is slow or blocked, events are dropped and counted.
const maxQueuedEvents = 4096

// dispatcher delivers events to Config.OnEvent, one at a time and in the
// order they were emitted, on a goroutine of its own that runs only while
// events are queued. Emitting never waits for OnEvent: a callback that
// blocks or panics cannot stall or break a refresh.
type dispatcher struct {
	fn      func(Event) // Config.OnEvent and Hooks; nil: events are not built
	mu      sync.Mutex
	queue   []*Event
	running bool          // a goroutine is delivering
	idle    chan struct{} // closed when the queue empties; nil while idle
	dropped atomic.Uint64
}

// emit queues ev for delivery.
func (e *Engine) emit(ev *Event) {
	d := &e.events
	if d.fn == nil {
		return
	}
	d.mu.Lock()
	if len(d.queue) >= maxQueuedEvents {
		d.mu.Unlock()
		d.dropped.Add(1)
		return
	}
	d.queue = append(d.queue, ev)
	start := !d.running
	if start {
		d.running, d.idle = true, make(chan struct{})
	}
	d.mu.Unlock()
	if start {
		go e.deliver()
	}
}

// deliver calls OnEvent for each queued event until the queue is empty. An
// event leaves the queue only once delivered, so the queue bounds all the
// events not yet delivered.
func (e *Engine) deliver() {
	d := &e.events
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.queue = nil
			d.running = false
			close(d.idle)
			d.idle = nil
			d.mu.Unlock()
			return
		}
		ev := d.queue[0]
		d.mu.Unlock()
		e.callOnEvent(ev)
		d.mu.Lock()
		d.queue[0] = nil
		d.queue = d.queue[1:]
		d.mu.Unlock()
	}
}

// callOnEvent calls OnEvent; a panic is logged without its value.
func (e *Engine) callOnEvent(ev *Event) {
	e.guarded(ev.Key, "OnEvent", func() { e.events.fn(*ev) })
}

// flushEvents waits until every event emitted so far was delivered, or
// done is closed.
func (e *Engine) flushEvents(done <-chan struct{}) {
	d := &e.events
	d.mu.Lock()
	idle := d.idle
	d.mu.Unlock()
	if idle == nil {
		return
	}
	select {
	case <-idle:
	case <-done:
	}
}
