package storetest

import (
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/refreshtest"
)

// holdWindow is how long FrozenHolder watches that nobody takes the lock
// or calls the server while the stopped holder keeps the lock. A lock that
// does not hold is caught at once; the window only gives it the chance.
const holdWindow = time.Second

// frozenHolder: see RunProcesses.
func frozenHolder(t *testing.T, k *kit) {
	r := k.begin(t, refreshtest.Options{}, nil)
	const g = 4
	victim := r.freezeVictim(g)
	r.expectHeld()
	others := r.start(2, g, false)
	procs.Await(t, "the others waiting for the lock", func() bool {
		return others[0].State().Waiting && others[1].State().Waiting
	}, others...)
	time.Sleep(holdWindow)
	r.expectWaited(others)
	victim.Thaw(t)
	victim.Resume(t)
	all := append([]*procs.Proc{victim}, others...)
	r.awaitServed("everyone on the token of the holder, continued", 1, g, all...)

	reps := procs.Finish(t, all...)
	if reps[0].Saved != "ok" || reps[0].Failures != 0 {
		t.Errorf("the continued holder: save %q, %d of %d requests failed; want ok, and none; first: %s",
			reps[0].Saved, reps[0].Failures, reps[0].Requests, reps[0].FirstErr)
	}
	r.expectServedAll(others, reps[1:])
	st := r.srv.Stats()
	if st.TokenRequests != 1 || st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("token requests = %d, refreshes = %d, reuses = %d; want 1, 1 and 0: nothing lost", st.TokenRequests, st.Refreshes, st.Reuses)
	}
	r.expectStoredCurrent()
	r.end()
}

// expectWaited checks that, while the holder was stopped, the others took
// no lock and called no server, and the store kept its token.
func (r *scene) expectWaited(others []*procs.Proc) {
	r.t.Helper()
	for _, p := range others {
		if n := p.State().Locks; n != 0 {
			r.t.Errorf("worker %s took the lock %d times while its holder was stopped", p.ID, n)
		}
	}
	if st := r.srv.Stats(); st.TokenRequests != 1 {
		r.t.Errorf("while the holder was stopped with the lock, %d token requests reached the server, want only its own", st.TokenRequests)
	}
	if got := r.stored(); !refresh.SameToken(got, r.seed) {
		r.t.Errorf("while the holder was stopped before its save, the store changed to %s", fps(got))
	}
}

// freezeVictim starts a worker of g goroutines alone, makes it refresh
// (the API refuses its token) and stops it (SIGSTOP) where its save of
// the server's answer pauses, holding the lock.
func (r *scene) freezeVictim(g int) *procs.Proc {
	r.t.Helper()
	p := r.start(1, g, true)[0]
	r.srv.RevokeAccessTokens()
	procs.First(r.t, "the holder paused in its save", func(s procs.State) bool { return s.Paused }, p)
	p.Freeze(r.t)
	return p
}

// expectHeld checks, if the store can tell, that someone holds the lock.
func (r *scene) expectHeld() {
	r.t.Helper()
	tl, ok := r.store.(refresh.TryLocker)
	if !ok {
		return
	}
	unlock, ok, err := tl.TryLock(r.ctx(defaultOptions.watchdog), refresh.DefaultKey)
	switch {
	case err != nil:
		r.t.Errorf("TryLock while the holder is stopped: %v", err)
	case ok:
		unlock()
		r.t.Errorf("TryLock took the lock: the holder, stopped in its save, does not hold it")
	}
}

// frozenPastLease: see RunProcesses.
func frozenPastLease(t *testing.T, k *kit) {
	r := k.begin(t, refreshtest.Options{Rotation: refreshtest.RotateSame}, nil)
	const g = 4
	victim := r.freezeVictim(g)
	unsaved := r.current() // the token only the stopped holder has
	if got := r.stored(); !refresh.SameToken(got, r.seed) || refresh.SameToken(unsaved, r.seed) {
		t.Fatalf("the holder stopped in its save: the store holds %s, the server's newest is %s; want the first token %s stored and a newer one issued",
			fps(got), fps(unsaved), fps(r.seed))
	}
	r.expectHeld()
	if k.opts.BreakLock != nil {
		k.opts.BreakLock(t, r.ns)
	}
	others := r.start(2, g, false)
	newer := r.awaitNewer(others, unsaved)
	victim.Thaw(t)
	victim.Resume(t)
	all := append([]*procs.Proc{victim}, others...)
	r.awaitServed("everyone on the newer token", 2, g, all...)

	reps := procs.Finish(t, all...)
	r.expectOvertaken(victim, reps[0], newer, unsaved)
	r.expectServedAll(others, reps[1:])
	if got := r.stored(); !refresh.SameToken(got, newer) {
		t.Errorf("the store holds %s at the end, want the newer %s (the stopped holder's was %s)", fps(got), fps(newer), fps(unsaved))
	}
	r.expectStoredCurrent()
	st := r.srv.Stats()
	t.Logf("server: %d token requests, %d refreshes, %d 401s", st.TokenRequests, st.Refreshes, st.Served401)
	if st.TokenRequests != 2 || st.Refreshes != 2 {
		t.Errorf("token requests = %d, refreshes = %d; want 2 and 2 (the stopped holder's, and the one that overtook it)", st.TokenRequests, st.Refreshes)
	}
	r.end()
}

// awaitNewer waits until one of others has saved a newer token than the
// seed, and returns it; it must not be the stopped holder's unsaved one.
func (r *scene) awaitNewer(others []*procs.Proc, unsaved *oauth2.Token) *oauth2.Token {
	r.t.Helper()
	var newer *oauth2.Token
	procs.Await(r.t, "another process saving a newer token", func() bool {
		newer = r.stored()
		return !refresh.SameToken(newer, r.seed)
	}, others...)
	if refresh.SameToken(newer, unsaved) {
		r.t.Fatalf("the store holds the stopped holder's token while it is stopped")
	}
	return newer
}

// expectOvertaken checks the report of a holder that was stopped past its
// lock, continued after another process saved newer.
func (r *scene) expectOvertaken(p *procs.Proc, rep procs.Report, newer, unsaved *oauth2.Token) {
	t := r.t
	t.Helper()
	t.Logf("stopped holder %s: save %q; %d requests (%d after it), %d failed; first error: %q",
		p.ID, rep.Saved, rep.Requests, rep.AfterSave, rep.Failures, rep.FirstErr)
	if rep.Saved != "conflict" {
		t.Errorf("the stopped holder's save, continued: %q, want a refusal wrapping refresh.ErrConflict", rep.Saved)
	}
	if rep.Failures != 0 || rep.AfterSave == 0 || rep.FailedAfterSave != 0 {
		t.Errorf("the stopped holder: %d of %d requests failed, %d of %d after its save; want none, and some after it",
			rep.Failures, rep.Requests, rep.FailedAfterSave, rep.AfterSave)
	}
	if rep.Served[refresh.Fingerprint(newer.AccessToken)] == 0 {
		t.Errorf("the API accepted no request of the stopped holder with the newer token it should adopt")
	}
	if n := rep.Served[refresh.Fingerprint(unsaved.AccessToken)]; n != 0 {
		t.Errorf("the API accepted %d requests of the stopped holder with the token whose save was refused", n)
	}
	if n := leasesLost(rep); r.k.opts.ReportsLeaseLost && n != 1 {
		t.Errorf("the stopped holder reported %d lost leases, want 1", n)
	}
}

// frozenPastLeaseRotating: see RunProcesses.
func frozenPastLeaseRotating(t *testing.T, k *kit) {
	r := k.begin(t, refreshtest.Options{}, nil)
	const g = 4
	victim := r.freezeVictim(g)
	unsaved := r.current()
	r.srv.lose(victim.ID, "its holder was stopped past its lock between the server's answer and its save")
	if k.opts.BreakLock != nil {
		k.opts.BreakLock(t, r.ns)
	}
	others := r.start(2, g, false)
	r.awaitReauth("the others told to log in again", others)
	victim.Thaw(t)
	victim.Resume(t)
	all := append([]*procs.Proc{victim}, others...)
	r.awaitReauth("the stopped holder, continued, told to log in again", all)

	reps := procs.Finish(t, all...)
	t.Logf("stopped holder %s: save %q", victim.ID, reps[0].Saved)
	for i, rep := range reps[1:] {
		r.expectNoLeaseLost(others[i], rep)
	}
	st := r.srv.Stats()
	t.Logf("server: %d token requests, %d refreshes, %d reuses, %d families revoked", st.TokenRequests, st.Refreshes, st.Reuses, st.FamiliesRevoked)
	// The holder's refresh; then at most one refused refresh per worker
	// and per token the store held: no loop.
	if most := 1 + 2*len(all); st.TokenRequests > most || st.FamiliesRevoked != 1 {
		t.Errorf("token requests = %d, families revoked = %d; want at most %d, and 1", st.TokenRequests, st.FamiliesRevoked, most)
	}
	if got := r.stored(); !refresh.SameToken(got, r.seed) && !refresh.SameToken(got, unsaved) {
		t.Errorf("the store holds %s: neither the first token %s nor the stopped holder's %s", fps(got), fps(r.seed), fps(unsaved))
	}
	r.end()
}

// awaitReauth waits until each of ps has had a request fail with
// refresh.ErrReauthRequired.
func (r *scene) awaitReauth(what string, ps []*procs.Proc) {
	r.t.Helper()
	procs.Await(r.t, what, func() bool {
		for _, p := range ps {
			if !p.State().Reauth {
				return false
			}
		}
		return true
	}, ps...)
}
