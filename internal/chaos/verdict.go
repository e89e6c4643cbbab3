package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

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
