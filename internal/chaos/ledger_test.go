package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// timeline builds a ledger's history at given offsets from its start.
type timeline struct {
	t   *testing.T
	l   *ledger
	at0 time.Time
}

func newTimeline(t *testing.T, lease time.Duration) *timeline {
	at0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l := newLedger(at0, lease)
	l.login(1, "start")
	return &timeline{t, l, at0}
}

func (tl *timeline) at(ms int) time.Time { return tl.at0.Add(time.Duration(ms) * time.Millisecond) }

func (tl *timeline) event(ms int, w string, ev refreshtest.TokenEvent) {
	ev.Time, ev.Header = tl.at(ms), http.Header{workerHeader: {w}}
	tl.l.onToken(ev)
}

// rotate: worker w spends pair n of grant 1 and gets n+1.
func (tl *timeline) rotate(ms int, w string, n int, dropped bool) {
	tl.event(ms, w, refreshtest.TokenEvent{Kind: refreshtest.TokenGranted, Grant: 1, Pair: n, NewPair: n + 1, Dropped: dropped, Fault: refreshtest.FaultReset})
}

// reuse: worker w presents spent pair n of grant 1, which revokes it.
func (tl *timeline) reuse(ms int, w string, n int) {
	tl.event(ms, w, refreshtest.TokenEvent{Kind: refreshtest.TokenReuse, Grant: 1, Pair: n, Reuse: true, Revoked: true, Code: "invalid_grant"})
}

func (tl *timeline) load(ms int, w string, n int) { tl.l.loaded(w, pair{1, n}, tl.at(ms)) }
func (tl *timeline) save(ms int, n int)           { tl.l.stored(pair{1, n}, tl.at(ms)) }

// only returns the one loss of the verdict.
func (tl *timeline) only(final pair) *loss {
	tl.t.Helper()
	v := tl.l.finish(final, final != pair{})
	if len(v.losses) != 1 {
		tl.t.Fatalf("got %d losses, want 1", len(v.losses))
	}
	return v.losses[0]
}

func check(t *testing.T, ls *loss, explained bool, causeHas, pattern string) {
	t.Helper()
	if ls.explained != explained || !strings.Contains(ls.cause, causeHas) || ls.pattern != pattern {
		t.Errorf("got explained %v, cause %q, pattern %q; want %v, a cause with %q, pattern %q\n%s",
			ls.explained, ls.cause, ls.pattern, explained, causeHas, pattern, strings.Join(ls.details, "\n"))
	}
}

func TestDroppedAnswer(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, true)
	tl.reuse(600, "1.1", 0) // the client's retry: it never saw pair 1
	check(t, tl.only(pair{1, 0}), true, "injected fault (reset)", "")
}

func TestKilledReceiver(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.l.kill("1.1", tl.at(150))
	tl.load(300, "2.1", 0)
	tl.reuse(310, "2.1", 0)
	check(t, tl.only(pair{1, 0}), true, "SIGKILLed", "")
}

// TestKilledAfterTheReuse: the receiver was alive, its save had failed, and
// another worker spent the old token: case (b), whatever happened later.
func TestKilledAfterTheReuse(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.l.engineLog("1.1", tl.at(120), logSaveFailed+"; using it from memory and retrying")
	tl.load(300, "2.1", 0)
	tl.reuse(310, "2.1", 0)
	tl.l.kill("1.1", tl.at(400))
	check(t, tl.only(pair{1, 0}), false, "had not reached the store", patternB)
}

// TestKilledAfterSaving: the new pair was in the store before the kill, so
// the kill explains nothing; the reuse of the old pair is stale.
func TestKilledAfterSaving(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.save(130, 1)
	tl.l.kill("1.1", tl.at(150))
	tl.reuse(310, "2.1", 0)
	check(t, tl.only(pair{1, 0}), false, "had reached the store", "")
}

// TestSeenInUse: another worker presenting the new pair means it got out,
// even if no store observation says so.
func TestSeenInUse(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.rotate(200, "3.1", 1, false)
	tl.l.kill("1.1", tl.at(250))
	tl.reuse(300, "2.1", 0)
	check(t, tl.only(pair{1, 0}), false, "had reached the store", "")
}

func TestStorePanicSameWorker(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.l.engineLog("1.1", tl.at(110), logPanicked)
	tl.load(200, "1.1", 0)
	tl.reuse(210, "1.1", 0)
	check(t, tl.only(pair{1, 0}), false, "presented its old pair", patternA)
}

func TestStorePanicOtherWorker(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.l.engineLog("1.1", tl.at(110), logPanicked)
	tl.load(200, "2.1", 0)
	tl.reuse(210, "2.1", 0)
	check(t, tl.only(pair{1, 0}), false, "had not reached the store", patternA)
}

// hold records that w held the store's lock from one offset to another
// (-1: never released).
func (tl *timeline) hold(w string, fromMS, toMS int) {
	tl.l.locked(w, tl.at(fromMS), false)
	if toMS >= 0 {
		tl.l.locked(w, tl.at(toMS), true)
	}
}

// TestFrozenReceiver: with a lease, a receiver frozen past it while holding
// the lock lets another worker in, which explains the loss; a short
// freeze, or a store without leases, does not.
func TestFrozenReceiver(t *testing.T) {
	for _, c := range []struct {
		lease     time.Duration
		freezeMS  int
		explained bool
	}{
		{1500 * time.Millisecond, 2000, true},
		{1500 * time.Millisecond, 1000, true}, // two thirds of the lease may be all that is left
		{1500 * time.Millisecond, 500, false},
		{0, 5000, false},
	} {
		tl := newTimeline(t, c.lease)
		tl.hold("1.1", 90, 2200)
		tl.rotate(100, "1.1", 0, false)
		tl.l.stop("1.1", tl.at(110), tl.at(110+c.freezeMS))
		tl.hold("2.1", 1800, 1950)
		tl.load(1900, "2.1", 0)
		tl.reuse(1910, "2.1", 0)
		ls := tl.only(pair{1, 0})
		if ls.explained != c.explained {
			t.Errorf("lease %v, freeze %dms: explained %v, want %v (%s)", c.lease, c.freezeMS, ls.explained, c.explained, ls.cause)
		}
	}
}

// TestFrozenSender: the worker that presents the old pair read it under the
// lock before the rotation and was frozen past its lease in between, so the
// receiver could take the lock too.
func TestFrozenSender(t *testing.T) {
	tl := newTimeline(t, 1500*time.Millisecond)
	tl.hold("2.1", 40, 2200)
	tl.load(50, "2.1", 0)
	tl.l.stop("2.1", tl.at(60), tl.at(2100))
	tl.hold("1.1", 1600, 1750)
	tl.rotate(1700, "1.1", 0, false)
	tl.save(1720, 1)
	tl.reuse(2110, "2.1", 0)
	check(t, tl.only(pair{1, 0}), true, "worker 2.1 was frozen 2.0s", "")

	// Frozen, but not holding the lock: the lock kept them apart, and
	// the freeze explains nothing.
	tl = newTimeline(t, 1500*time.Millisecond)
	tl.hold("1.1", 5, 20)
	tl.rotate(10, "1.1", 0, false)
	tl.l.engineLog("1.1", tl.at(12), logSaveFailed)
	tl.l.stop("2.1", tl.at(30), tl.at(2000))
	tl.hold("2.1", 2050, 2200)
	tl.load(2060, "2.1", 0)
	tl.reuse(2110, "2.1", 0)
	check(t, tl.only(pair{1, 0}), false, "had not reached the store", patternB)
}

// TestLockOverlap: two workers inside the lock at once with no freeze is a
// fault of the lock, on any store.
func TestLockOverlap(t *testing.T) {
	for _, lease := range []time.Duration{0, 1500 * time.Millisecond} {
		tl := newTimeline(t, lease)
		tl.hold("1.1", 0, 300)
		tl.hold("2.1", 100, 400)
		tl.load(110, "2.1", 0)
		tl.rotate(200, "1.1", 0, false)
		tl.save(210, 1)
		tl.reuse(350, "2.1", 0)
		check(t, tl.only(pair{1, 0}), false, "the lock did not exclude", "")
	}
}

// TestLeaseLostUnderLoad: an overlap without a freeze is explained on a
// lease store only if the store reported the lease lost.
func TestLeaseLostUnderLoad(t *testing.T) {
	tl := newTimeline(t, 1500*time.Millisecond)
	tl.hold("2.1", 0, 1900)
	tl.hold("1.1", 1600, 1700)
	tl.rotate(1650, "1.1", 0, false)
	tl.save(1660, 1)
	tl.load(1880, "2.1", 0) // stamped late: it was not running
	tl.reuse(1890, "2.1", 0)
	tl.l.lostLease("2.1", tl.at(1901))
	check(t, tl.only(pair{1, 0}), true, "without being frozen", "")
}

// TestKilledHolder: a holder killed with the lock is not inside it
// afterwards (the kernel or the lease releases it).
func TestKilledHolder(t *testing.T) {
	tl := newTimeline(t, 1500*time.Millisecond)
	tl.hold("1.1", 90, -1)
	tl.rotate(100, "1.1", 0, false)
	tl.l.kill("1.1", tl.at(150))
	tl.hold("2.1", 1700, 1800)
	tl.load(1710, "2.1", 0)
	tl.reuse(1720, "2.1", 0)
	check(t, tl.only(pair{1, 0}), true, "SIGKILLed", "")
}

func TestStrandedAtTheEnd(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.save(110, 1)
	tl.rotate(1100, "2.1", 1, false)
	tl.l.engineLog("2.1", tl.at(1110), logSaveFailed)
	check(t, tl.only(pair{1, 1}), false, "never reached the store", "a failed save was not made good before the worker stopped")

	tl = newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.l.kill("1.1", tl.at(200))
	check(t, tl.only(pair{1, 0}), true, "SIGKILLed", "")
}

func TestNothingLost(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.rotate(100, "1.1", 0, false)
	tl.save(110, 1)
	if v := tl.l.finish(pair{1, 1}, true); len(v.losses) != 0 || len(v.unexpected) != 0 {
		t.Errorf("got %d losses, unexpected %q; want none", len(v.losses), v.unexpected)
	}
	tl = newTimeline(t, 0)
	check(t, tl.only(pair{7, 3}), false, "not a token of grant 1", "")
}

// TestAfterTheLoss: the presentations of a dead grant's tokens after its
// loss are its consequences; before it, or of a live grant, they are not
// expected. The orchestrator is asked once to log in again.
func TestAfterTheLoss(t *testing.T) {
	tl := newTimeline(t, 0)
	tl.event(50, "3.1", refreshtest.TokenEvent{Kind: refreshtest.TokenRefused, Grant: 1, Pair: 0, Code: "invalid_client"})
	tl.rotate(100, "1.1", 0, true)
	tl.reuse(200, "1.1", 0)
	tl.event(300, "2.1", refreshtest.TokenEvent{Kind: refreshtest.TokenReuse, Grant: 1, Pair: 0, Reuse: true, Code: "invalid_grant"})
	tl.event(310, "3.1", refreshtest.TokenEvent{Kind: refreshtest.TokenRefused, Grant: 1, Pair: 1, Code: "invalid_grant"})
	if g := <-tl.l.relogin; g != 1 || len(tl.l.relogin) != 0 {
		t.Errorf("relogin: got grant %d and %d more, want grant 1 once", g, len(tl.l.relogin))
	}
	tl.l.login(2, "again")
	tl.event(400, "3.1", refreshtest.TokenEvent{Kind: refreshtest.TokenGranted, Grant: 2, Pair: 0, NewPair: 1})
	tl.l.stored(pair{2, 1}, tl.at(410))
	v := tl.l.finish(pair{2, 1}, true)
	if len(v.losses) != 1 || v.losses[0].afterwards != 1 || v.afterLoss != 1 {
		t.Fatalf("got %d losses, %d afterwards, %d refusals after the loss; want 1, 1, 1", len(v.losses), v.losses[0].afterwards, v.afterLoss)
	}
	if len(v.unexpected) != 1 || !strings.Contains(v.unexpected[0], "invalid_client") {
		t.Errorf("unexpected: got %q, want the invalid_client", v.unexpected)
	}
}

func TestParsePairAndRedact(t *testing.T) {
	if p, ok := parsePair("rt-12-345-0123456789abcdef"); !ok || p != (pair{12, 345}) {
		t.Errorf("got %v %v, want 12/345", p, ok)
	}
	for _, bad := range []string{"", "rt-1", "xx-1-2-ab", "rt-a-2-ab"} {
		if _, ok := parsePair(bad); ok {
			t.Errorf("parsePair(%q) succeeded", bad)
		}
	}
	if got, want := redact("token at-3-4-deadbeef00112233 and rt-3-4-0011"), "token <token 3/4> and <token 3/4>"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestExcerpt(t *testing.T) {
	panicked := "some log\npanic: storetest: injected panic in Lock\n\ngoroutine 7 [running]:\nmain.f()\n"
	if got := excerpt(panicked); !strings.HasPrefix(got, "panic: storetest") {
		t.Errorf("panic: got %q", got)
	}
	dump := "SIGQUIT: quit\nPC=0x1\n\ngoroutine 0 gp=0x1 m=8 [idle]:\nruntime.futex()\n\n" +
		"goroutine 5 [select]:\nruntime.gopark()\n\t/x.go:1\nmain.(*traffic).loop(0x1)\n\t/w.go:2\n\n" +
		"goroutine 9 [semacquire]:\nsync.(*Mutex).Lock()\ngithub.com/oauthkit/refresh.(*Engine).flight(0x2)\n"
	want := "goroutine 5 [select] in main.(*traffic).loop\ngoroutine 9 [semacquire] in github.com/oauthkit/refresh.(*Engine).flight"
	if got := excerpt(dump); got != want {
		t.Errorf("dump: got\n%s\nwant\n%s", got, want)
	}
}
