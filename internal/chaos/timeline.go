package main

import (
	"fmt"
	"strings"
	"time"
)

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
