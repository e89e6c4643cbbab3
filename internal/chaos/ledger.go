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

// progressOf reports the newest pair issued for grant, and when the last
// rotation of it was granted.
func (l *ledger) progressOf(grant int) (newest int, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.rot {
		if r.from.grant == grant && r.at.After(last) {
			last = r.at
		}
	}
	return l.newest[grant], last
}

// firstSeen returns when a pair of grant q.grant numbered q.n or later was
// first known to have left worker except: in the store, or presented by
// another worker. Pairs of a grant only go forward, so a later one implies
// q. Zero if never. Called with mu held.
func (l *ledger) firstSeen(q pair, except string) time.Time {
	var first time.Time
	earlier := func(t time.Time) {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	for p, t := range l.seen {
		if p.grant == q.grant && p.n >= q.n {
			earlier(t)
		}
	}
	for p, ss := range l.presented {
		if p.grant == q.grant && p.n >= q.n {
			for _, s := range ss {
				if s.worker != except {
					earlier(s.at)
				}
			}
		}
	}
	return first
}

// before reports whether t is set and earlier than u (never is after
// everything).
func before(t, u time.Time) bool { return !t.IsZero() && t.Before(u) }

// longStop returns a SIGSTOP of w during sec, long enough that the lease
// may have run out.
func (l *ledger) longStop(w string, sec span) (span, bool) {
	if l.lease <= 0 {
		return span{}, false
	}
	// Renewed every third of its term, a lease has at least two thirds
	// of it left when its holder freezes.
	need := l.lease * 2 / 3
	for _, s := range l.stops[w] {
		if s.to.Sub(s.from) >= need && sec.overlaps(s) {
			return s, true
		}
	}
	return span{}, false
}

// leaseLostIn returns when w's Redis store reported that the lease of sec
// was lost: during it, or at its release.
func (l *ledger) leaseLostIn(w string, sec span) (time.Time, bool) {
	if l.lease <= 0 || sec.to.IsZero() {
		return time.Time{}, false
	}
	for _, t := range l.leaseLost[w] {
		if !t.Before(sec.from) && !t.After(sec.to.Add(time.Second)) {
			return t, true
		}
	}
	return time.Time{}, false
}

func (a span) length() time.Duration { return a.to.Sub(a.from) }

// section returns the time during which w held the store's lock at t
// (taken at or before t). Its end is when w unlocked, or was killed or
// crashed; zero if never.
func (l *ledger) section(w string, t time.Time) (span, bool) {
	var sec span
	found := false
	for _, s := range l.locks[w] {
		if !s.from.After(t) {
			sec, found = s, true
		}
	}
	if !found {
		return span{}, false
	}
	if sec.to.IsZero() {
		if k, ok := l.killed[w]; ok && k.After(sec.from) {
			sec.to = k
		} else if c, ok := l.crashed[w]; ok && c.After(sec.from) {
			sec.to = c
		}
	}
	return sec, true
}

// overlaps reports whether two spans share a moment; a zero end is never.
func (a span) overlaps(b span) bool {
	end := func(s span) time.Time {
		if s.to.IsZero() {
			return time.Unix(1<<40, 0)
		}
		return s.to
	}
	return a.from.Before(end(b)) && b.from.Before(end(a))
}

// holding reports whether some worker holds the store's lock now, as far
// as the workers said (a killed or crashed one holds nothing).
func (l *ledger) holding() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w, ss := range l.locks {
		_, killed := l.killed[w]
		_, crashed := l.crashed[w]
		if len(ss) > 0 && ss[len(ss)-1].to.IsZero() && !killed && !crashed {
			return true
		}
	}
	return false
}

// locked records that w took the store's lock at t (unlocking: released).
func (l *ledger) locked(w string, t time.Time, unlocking bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ss := l.locks[w]
	switch {
	case !unlocking:
		l.locks[w] = append(ss, span{from: t})
	case len(ss) > 0 && ss[len(ss)-1].to.IsZero():
		ss[len(ss)-1].to = t
	}
}

// logsBetween returns w's engine warnings in [from, to].
func (l *ledger) logsBetween(w string, from, to time.Time) []string {
	var out []string
	for _, ll := range l.logs[w] {
		if !ll.at.Before(from) && !ll.at.After(to) {
			out = append(out, fmt.Sprintf("%s %q", l.rel(ll.at), strings.TrimPrefix(ll.msg, "refresh: ")))
		}
	}
	return out
}

func (l *ledger) hasLog(w string, from, to time.Time, prefix string) bool {
	for _, ll := range l.logs[w] {
		if !ll.at.Before(from) && !ll.at.After(to) && strings.HasPrefix(ll.msg, prefix) {
			return true
		}
	}
	return false
}

// Messages of the engine the patterns look for (refresh.go).
const (
	logPanicked   = "refresh: refresh panicked"
	logSaveFailed = "refresh: saving the new token failed"
)

// Known patterns of library faults, named as in the engine's bug reports.
const (
	patternA = "(a) a store panic after the rotation lost the new token; the old refresh token was sent again"
	patternB = "(b) a failed save left the old token in the store, and another process spent it"
)

// verdict is the outcome of a soak, as far as the ledger can tell.
type verdict struct {
	losses     []*loss
	unexpected []string // refusals and reuses that no loss accounts for
	afterLoss  int      // refusals of tokens of lost grants (expected)
}

func (v verdict) unexplained() int {
	n := 0
	for _, ls := range v.losses {
		if !ls.explained {
			n++
		}
	}
	return n
}

// finish explains every loss, given what the store held at the end
// (final; ok false if nothing), after the workers drained.
func (l *ledger) finish(final pair, ok bool) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if g := l.current; l.lossOf[g] == nil {
		switch n := l.newest[g]; {
		case !ok || final.grant != g:
			l.addLoss(&loss{kind: lostWrongGrant, grant: g, at: now, stored: final})
		case final.n < n:
			l.addLoss(&loss{kind: lostStranded, grant: g, at: now, stored: final})
		}
	}
	var v verdict
	for _, ev := range l.reuses {
		ls := l.lossOf[ev.p.grant]
		switch {
		case ev.revoked:
		case ls != nil && !ev.at.Before(ls.at):
			ls.afterwards++
		default:
			v.unexpected = append(v.unexpected, fmt.Sprintf("%s: worker %s presented spent pair %v again, not after a loss of its grant",
				l.rel(ev.at), ev.worker, ev.p))
		}
	}
	for _, r := range l.refusals {
		ls := l.lossOf[r.p.grant]
		if r.code == "invalid_grant" && ls != nil && !r.at.Before(ls.at) {
			v.afterLoss++
			continue
		}
		v.unexpected = append(v.unexpected, fmt.Sprintf("%s: worker %s was refused %s for pair %v", l.rel(r.at), r.worker, r.code, r.p))
	}
	for _, ls := range l.losses {
		l.explain(ls, now)
	}
	v.losses = slices.Clone(l.losses)
	slices.SortStableFunc(v.losses, func(a, b *loss) int { return a.at.Compare(b.at) })
	return v
}

// explain fills in ls's explanation. Called with mu held.
func (l *ledger) explain(ls *loss, end time.Time) {
	switch ls.kind {
	case lostStalled:
		ls.cause = "the lineage made no progress: " + ls.note
		return
	case lostWrongGrant:
		ls.cause = fmt.Sprintf("at the end the store held %v, not a token of grant %d, the latest login", ls.stored, ls.grant)
		if ls.stored == (pair{}) {
			ls.cause = fmt.Sprintf("at the end the store held no token of grant %d, the latest login", ls.grant)
		}
		return
	}
	p, until := ls.stored, ls.at // the pair spent twice or stranded; when the lineage was lost
	if ls.kind == lostByReuse {
		p = ls.reused
	}
	r := l.rot[p]
	if r == nil {
		ls.cause = fmt.Sprintf("pair %v was never rotated, yet the lineage was lost", p)
		return
	}
	q := pair{p.grant, r.to}
	R, Y := r.worker, ls.reuser
	seenAt := l.firstSeen(q, R)
	l.evidence(ls, r, q, seenAt)

	explained := func(format string, args ...any) { ls.explained, ls.cause = true, fmt.Sprintf(format, args...) }
	if r.dropped {
		explained("the server rotated pair %v but an injected fault (%s) replaced its answer: worker %s never saw pair %v",
			p, faultName(r.fault), R, q)
		return
	}
	// Did the lock keep the two refreshes apart? If the receiver and the
	// sender of the old pair held it at the same time, only a freeze past
	// a lease excuses that.
	if ls.kind == lostByReuse && Y != R {
		rs, rok := l.section(R, r.at)
		ys, yok := l.section(Y, until)
		if rok && yok && rs.overlaps(ys) {
			if why, ok := l.excuseOverlap([]holder{{R, rs}, {Y, ys}}); ok {
				explained("workers %s and %s held the lock at the same time: %s", R, Y, why)
				return
			}
			ls.cause = fmt.Sprintf("workers %s and %s held the store's lock at the same time (from %s and %s), neither was frozen and no lease was lost: the lock did not exclude",
				R, Y, l.rel(rs.from), l.rel(ys.from))
			return
		}
	}
	if before(seenAt, until) {
		// The new pair was out; presenting the old one was stale.
		if Y == R {
			ls.cause = fmt.Sprintf("worker %s presented pair %v again after its own new pair %v had reached the store", R, p, q)
		} else {
			ls.cause = fmt.Sprintf("worker %s presented pair %v although pair %v had reached the store at %s", Y, p, q, l.rel(seenAt))
		}
		return
	}
	if ls.kind == lostByReuse && Y == R {
		ls.cause = fmt.Sprintf("worker %s received pair %v and then presented its old pair %v again itself", R, q, p)
		if l.hasLog(R, r.at, until, logPanicked) {
			ls.pattern = patternA
		}
		return
	}
	if k, ok := l.killed[R]; ok && !k.After(until) {
		when := fmt.Sprintf("%s after the rotation, before pair %v reached the store", k.Sub(r.at).Round(time.Millisecond), q)
		if k.Before(r.at) {
			when = fmt.Sprintf("while its refresh was at the server (%s before the rotation)", r.at.Sub(k).Round(time.Millisecond))
		}
		explained("worker %s was SIGKILLed at %s, %s", R, l.rel(k), when)
		return
	}
	if c, ok := l.crashed[R]; ok && !c.After(until) {
		ls.cause = fmt.Sprintf("worker %s crashed at %s holding pair %v, before it reached the store", R, l.rel(c), q)
		return
	}
	if ls.kind == lostByReuse {
		ls.cause = fmt.Sprintf("pair %v, received by worker %s (alive), had not reached the store when worker %s presented pair %v again",
			q, R, Y, p)
		t, ok := l.lastLoad[Y][p]
		switch {
		case l.hasLog(R, r.at, until, logPanicked):
			ls.pattern = patternA
		case ok && t.After(r.at) && l.hasLog(R, r.at.Add(-time.Second), until, logSaveFailed):
			ls.pattern = patternB
		}
		return
	}
	_, killed := l.killed[R]
	ls.cause = fmt.Sprintf("pair %v, received by worker %s, never reached the store (worker %s %s)", q, R, R, map[bool]string{true: "was killed later", false: "was alive"}[killed])
	if l.hasLog(R, r.at.Add(-time.Second), end, logSaveFailed) {
		ls.pattern = "a failed save was not made good before the worker stopped"
	}
}

// holder is a worker and the time it held the lock.
type holder struct {
	w   string
	sec span
}

// excuseOverlap says why holders held the lock at once, if a lease that
// ran out does: a freeze past it (first), or a loss the store reported.
func (l *ledger) excuseOverlap(holders []holder) (string, bool) {
	for _, h := range holders {
		if f, ok := l.longStop(h.w, h.sec); ok {
			return fmt.Sprintf("worker %s was frozen %.1fs (SIGSTOP at %s) while holding it, past its %v Redis lease",
				h.w, f.to.Sub(f.from).Seconds(), l.rel(f.from), l.lease), true
		}
	}
	for _, h := range holders {
		if t, ok := l.leaseLostIn(h.w, h.sec); ok {
			return fmt.Sprintf("worker %s held it for %v without being frozen and its %v Redis lease expired (reported lost at %s): the loaded machine did not run it for longer than the lease",
				h.w, h.sec.length().Round(time.Millisecond), l.lease, l.rel(t)), true
		}
	}
	return "", false
}

// evidence lists what the ledger knows of the loss. Called with mu held.
func (l *ledger) evidence(ls *loss, r *rotation, q pair, seenAt time.Time) {
	R, Y, p, until := r.worker, ls.reuser, r.from, ls.at
	add := func(format string, args ...any) { ls.details = append(ls.details, fmt.Sprintf(format, args...)) }
	add("%s: worker %s spent pair %v and was issued pair %v", l.rel(r.at), R, p, q)
	if ls.kind == lostByReuse {
		add("%s: worker %s presented pair %v again; the server revoked grant %d", l.rel(ls.at), Y, p, p.grant)
	} else {
		add("end: the store held pair %v; pair %v or later never reached it", p, q)
	}
	if before(seenAt, until) {
		add("%s: pair %v (or later) reached the store or another worker", l.rel(seenAt), q)
	}
	for _, w := range uniq(R, Y) {
		at := r.at
		if w == Y && w != R {
			at = until
		}
		if sec, ok := l.section(w, at); ok {
			add("worker %s held the lock from %s to %s", w, l.rel(sec.from), l.rel(sec.to))
		}
	}
	if t, ok := l.lastLoad[Y][p]; ok && Y != "" {
		add("%s: worker %s last read pair %v from the store", l.rel(t), Y, p)
	}
	for _, w := range uniq(R, Y) {
		if lines := l.logsBetween(w, r.at.Add(-time.Second), until); len(lines) > 0 {
			add("worker %s's engine logged: %s", w, strings.Join(lines, ", "))
		}
		for _, t := range l.leaseLost[w] {
			if !t.Before(r.at.Add(-2*l.lease)) && !t.After(until.Add(2*l.lease)) {
				add("%s: worker %s's Redis store reported a lease it held as lost", l.rel(t), w)
			}
		}
		for _, s := range l.stops[w] {
			if s.to.After(r.at.Add(-5*time.Second)) && s.from.Before(until) {
				add("worker %s was frozen from %s to %s", w, l.rel(s.from), l.rel(s.to))
			}
		}
	}
}

func uniq(a, b string) []string {
	if b == "" || a == b {
		return []string{a}
	}
	return []string{a, b}
}

// lossOfGrant returns the loss of grant, nil if it was not lost.
func (l *ledger) lossOfGrant(grant int) *loss {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lossOf[grant]
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
