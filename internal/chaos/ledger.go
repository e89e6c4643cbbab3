package main

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// The ledger records what every party saw, with times, and at the end
// explains each lost token family (lineage) or calls it a library fault.
//
// A lineage is one login: grant g, whose pairs 0, 1, 2… each replace the
// one before (refresh tokens rotate on every refresh). It is lost when a
// spent refresh token of it is presented again (the server then revokes
// the whole grant), or when its newest pair has not reached the store by
// the end. Either way some rotation p → q was received by a worker R and
// then q did not reach the others. That is explained, and not the
// library's fault, only when:
//
//   - the server rotated but an injected fault replaced its answer
//     (Faults.AfterGrant): R never saw q;
//   - R was SIGKILLed after the rotation and before q reached the store
//     (or another worker) — before the reuse, if there was one;
//   - with a store whose lock is a lease (Redis), R and the worker Y that
//     presented p again held the lock at the same time (the workers report
//     when they take and release it), and one of them was frozen by
//     SIGSTOP while holding it, long enough to lose its lease; or one of
//     them lost its lease without a freeze, as its store reported (the
//     machine did not run it for that long: a lease's limit, counted apart).
//
// Anything else, a crash included, is a library fault; two workers inside
// the lock at once without such a freeze is a fault of the lock, on any
// store. The times come from one machine's clock, in several processes; no
// rule depends on how long anything took except the freeze, which is
// compared with the lease.
type ledger struct {
	start time.Time
	lease time.Duration // 0: the store's lock lasts as long as its holder

	// relogin receives the grant of the current lineage when it was lost,
	// so that the orchestrator logs in again.
	relogin chan int

	mu        sync.Mutex                    // guards every field below
	current   int                           // grant of the latest login
	logins    []login                       // in order
	rot       map[pair]*rotation            // by the pair it spent
	newest    map[int]int                   // grant → newest pair issued
	lossOf    map[int]*loss                 // grant → its loss, once detected
	losses    []*loss                       // in order of detection
	presented map[pair][]sighting           // token requests, by the pair presented
	seen      map[pair]time.Time            // earliest time a pair was known in the store
	lastLoad  map[string]map[pair]time.Time // worker → pair → latest Load
	killed    map[string]time.Time          // incarnation → SIGKILL
	crashed   map[string]time.Time          // incarnation → unexpected exit
	stops     map[string][]span             // incarnation → SIGSTOP…SIGCONT
	locks     map[string][]span             // incarnation → the store's lock held (to zero: not released)
	leaseLost map[string][]time.Time        // incarnation → LeaseLost reports
	logs      map[string][]logLine          // incarnation → engine warnings
	refusals  []refusal
	reuses    []refusal // every TokenReuse
	counts    eventCounts
	tracing   bool        // keep traced
	traced    []traceLine // every event, for -trace
}

type traceLine struct {
	at   time.Time
	text string
}

// trace records one line of the timeline, if tracing. It must never be
// given a token value.
func (l *ledger) trace(at time.Time, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.traceLocked(at, format, args...)
}

func (l *ledger) traceLocked(at time.Time, format string, args ...any) {
	if l.tracing {
		l.traced = append(l.traced, traceLine{at, fmt.Sprintf(format, args...)})
	}
}

// writeTrace writes the timeline in order of time.
func (l *ledger) writeTrace(w io.Writer) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := slices.Clone(l.traced)
	slices.SortStableFunc(lines, func(a, b traceLine) int { return a.at.Compare(b.at) })
	bw := bufio.NewWriter(w)
	for _, t := range lines {
		fmt.Fprintf(bw, "%s %s\n", l.rel(t.at), t.text)
	}
	return bw.Flush()
}

type login struct {
	grant  int
	at     time.Time
	reason string
}

// rotation is a granted refresh: the pair spent, the one issued, and who
// asked for it.
type rotation struct {
	from    pair
	to      int
	worker  string
	at      time.Time
	dropped bool              // an injected fault replaced the answer
	fault   refreshtest.Fault // which, when dropped
}

type sighting struct {
	worker string
	at     time.Time
}

type span struct{ from, to time.Time }

type logLine struct {
	at  time.Time
	msg string
}

// refusal is a refused token request (code) or a reuse (revoked tells
// whether it revoked the grant).
type refusal struct {
	p       pair
	code    string
	worker  string
	at      time.Time
	revoked bool
}

type eventCounts struct {
	requests, granted, reuses, revoked, dropped int
	faults                                      map[string]int // injected fault → requests it answered
}

// lossKind is how a lineage was found lost.
type lossKind int

const (
	lostByReuse    lossKind = iota // a spent refresh token was presented again
	lostStranded                   // at the end, the store lags the newest pair
	lostStalled                    // nothing happened for a long time; the orchestrator gave up on it
	lostWrongGrant                 // at the end, the store holds another grant than the latest login
)

// loss is one lost lineage and, after explain, its explanation.
type loss struct {
	kind   lossKind
	grant  int
	at     time.Time
	reused pair   // lostByReuse: the pair presented again
	reuser string // lostByReuse: who presented it
	stored pair   // lostStranded, lostWrongGrant: what the store held at the end
	note   string // lostStalled: what the orchestrator saw

	afterwards int // later presentations of spent tokens of the dead grant

	explained bool
	cause     string   // one line
	pattern   string   // for library faults: a known pattern's name, if it matches one
	details   []string // the evidence
}

func newLedger(start time.Time, lease time.Duration) *ledger {
	return &ledger{
		start:     start,
		lease:     lease,
		relogin:   make(chan int, 16),
		rot:       map[pair]*rotation{},
		newest:    map[int]int{},
		lossOf:    map[int]*loss{},
		presented: map[pair][]sighting{},
		seen:      map[pair]time.Time{},
		lastLoad:  map[string]map[pair]time.Time{},
		killed:    map[string]time.Time{},
		crashed:   map[string]time.Time{},
		stops:     map[string][]span{},
		locks:     map[string][]span{},
		leaseLost: map[string][]time.Time{},
		logs:      map[string][]logLine{},
		counts:    eventCounts{faults: map[string]int{}},
	}
}

func (l *ledger) rel(t time.Time) string { return rel(l.start, t) }

// login records a new lineage, which becomes the current one.
func (l *ledger) login(grant int, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.current = grant
	l.logins = append(l.logins, login{grant, time.Now(), reason})
	l.traceLocked(time.Now(), "orchestrator: login, grant %d (%s)", grant, reason)
}

func (l *ledger) currentGrant() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current
}

// onToken is the server's Options.OnTokenRequest.
func (l *ledger) onToken(ev refreshtest.TokenEvent) {
	w := ev.Header.Get(workerHeader)
	ev.Header = nil
	p := pair{ev.Grant, ev.Pair}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts.requests++
	l.traceLocked(ev.Time, "server: %v from worker %s: pair %v%s", ev.Kind, w, p, eventNote(ev))
	if ev.Grant != 0 {
		l.presented[p] = append(l.presented[p], sighting{w, ev.Time})
	}
	if ev.Kind == refreshtest.TokenFault || ev.Dropped {
		name := faultName(ev.Fault)
		if ev.Dropped {
			name += " after the grant"
			l.counts.dropped++
		}
		l.counts.faults[name]++
	}
	switch ev.Kind {
	case refreshtest.TokenGranted:
		l.counts.granted++
		l.rot[p] = &rotation{from: p, to: ev.NewPair, worker: w, at: ev.Time, dropped: ev.Dropped, fault: ev.Fault}
		l.newest[ev.Grant] = max(l.newest[ev.Grant], ev.NewPair)
	case refreshtest.TokenReuse:
		l.counts.reuses++
		l.reuses = append(l.reuses, refusal{p, ev.Code, w, ev.Time, ev.Revoked})
		if ev.Revoked {
			l.counts.revoked++
			ls := &loss{kind: lostByReuse, grant: ev.Grant, at: ev.Time, reused: p, reuser: w}
			l.addLoss(ls)
		}
	case refreshtest.TokenRefused:
		l.refusals = append(l.refusals, refusal{p, ev.Code, w, ev.Time, false})
	}
}

// addLoss records a lost lineage; if it is the current one, the
// orchestrator is asked to log in again. Called with mu held.
func (l *ledger) addLoss(ls *loss) {
	if l.lossOf[ls.grant] != nil {
		return
	}
	l.lossOf[ls.grant] = ls
	l.losses = append(l.losses, ls)
	if ls.grant == l.current {
		select {
		case l.relogin <- ls.grant:
		default: // a login is pending already
		}
	}
}

// stall records that the current lineage made no progress for long; the
// caller logs in again.
func (l *ledger) stall(grant int, note string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addLoss(&loss{kind: lostStalled, grant: grant, at: time.Now(), note: note})
	l.traceLocked(time.Now(), "orchestrator: grant %d stalled", grant)
}

func eventNote(ev refreshtest.TokenEvent) string {
	var b strings.Builder
	if ev.Kind == refreshtest.TokenGranted {
		fmt.Fprintf(&b, " → %d", ev.NewPair)
	}
	if ev.Code != "" {
		b.WriteString(" " + ev.Code)
	}
	if ev.Revoked {
		b.WriteString(", grant revoked")
	}
	if ev.Dropped {
		b.WriteString(", answer dropped by " + faultName(ev.Fault))
	}
	if ev.Kind == refreshtest.TokenFault {
		b.WriteString(" " + faultName(ev.Fault))
	}
	return b.String()
}

func faultName(f refreshtest.Fault) string {
	switch f {
	case refreshtest.FaultUnavailable:
		return "503"
	case refreshtest.FaultTooManyRequests:
		return "429"
	case refreshtest.FaultReset:
		return "reset"
	}
	return strings.TrimPrefix(f.String(), "Fault")
}

// stored records that the store held p at t (a worker's report of a Load
// or a committed save, or the orchestrator's poll).
func (l *ledger) stored(p pair, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.seen[p]; !ok || t.Before(s) {
		l.seen[p] = t
	}
}

// loaded records that worker w's engine read p from the store at t.
func (l *ledger) loaded(w string, p pair, t time.Time) {
	l.stored(p, t)
	l.mu.Lock()
	defer l.mu.Unlock()
	m := l.lastLoad[w]
	if m == nil {
		m = map[pair]time.Time{}
		l.lastLoad[w] = m
	}
	if t.After(m[p]) {
		m[p] = t
	}
}

func (l *ledger) kill(w string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.killed[w] = t
	l.traceLocked(t, "orchestrator: SIGKILL worker %s", w)
}

func (l *ledger) crash(w string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.crashed[w] = t
	l.traceLocked(t, "orchestrator: worker %s crashed", w)
}

func (l *ledger) stop(w string, from, to time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stops[w] = append(l.stops[w], span{from, to})
	l.traceLocked(from, "orchestrator: SIGSTOP worker %s", w)
	l.traceLocked(to, "orchestrator: SIGCONT worker %s (%v)", w, to.Sub(from).Round(time.Millisecond))
}

func (l *ledger) lostLease(w string, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leaseLost[w] = append(l.leaseLost[w], t)
	l.traceLocked(t, "worker %s: redisstore reports a lease lost", w)
}

func (l *ledger) engineLog(w string, t time.Time, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.logs[w] = append(l.logs[w], logLine{t, msg})
	l.traceLocked(t, "worker %s: engine: %s", w, msg)
}

// loginList returns the logins so far.
func (l *ledger) loginList() []login {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.logins)
}

// eventTotals returns the token-endpoint counts.
func (l *ledger) eventTotals() eventCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.counts
	c.faults = make(map[string]int, len(l.counts.faults))
	for k, v := range l.counts.faults {
		c.faults[k] = v
	}
	return c
}

// sortedKeys returns m's keys in order.
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
