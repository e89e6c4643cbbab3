package storetest

import (
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/refreshtest"
)

// dueLifetime is the expires_in of the token the storm's first refresh
// returns, in seconds: it is due at half of it. It leaves the processes
// whose early refresh found the lock held (they defer, and try again
// within seconds) time to adopt it before it expires.
const dueLifetime = 6

// storm: see RunProcesses. Access tokens never expire on the server, and
// say nothing of their lifetime, except the first refresh's, which says it
// lives dueLifetime seconds: so every refresh is one of the four events,
// and the count is exact. The next event comes only once every goroutine has been
// served with the token the last one brought, so no request meets two
// rotations (the engine follows a replaced token once per request, by
// design), whatever the load of the machine.
func storm(t *testing.T, k *kit) {
	opts := refreshtest.Options{Lifetime: -1, Extra: func(_, pair int) map[string]any {
		if pair == 1 {
			return map[string]any{"expires_in": dueLifetime}
		}
		return nil
	}}
	r := k.begin(t, opts, func(tok *oauth2.Token) { tok.Expiry = time.Now().Add(-time.Minute) })
	n, g := k.opts.Processes, k.opts.Goroutines
	ps := r.start(n, g, false)
	r.awaitServed("the expired token, then its short-lived successor, replaced", 2, g, ps...)
	r.srv.RevokeAccessTokens()
	r.awaitServed("the refused token replaced", 3, g, ps...)
	r.srv.RevokeAccessTokens()
	r.awaitServed("the token refused next replaced", 4, g, ps...)

	reps := procs.Finish(t, ps...)
	requests := r.expectServedAll(ps, reps)
	events := map[string]int64{}
	for _, rep := range reps {
		for f, c := range rep.Flights {
			events[f] += c
		}
	}
	st := r.srv.Stats()
	t.Logf("%d processes × %d goroutines: %d requests, engine events %v; server: %d token requests, %d refreshes, %d rotations, %d reuses, %d 401s",
		n, g, requests, events, st.TokenRequests, st.Refreshes, st.Rotations, st.Reuses, st.Served401)
	if st.Reuses != 0 || st.TokenRequests != st.Rotations || st.Refreshes != st.Rotations {
		t.Errorf("reuses = %d, token requests = %d, refreshes = %d, rotations = %d: want no reuse, and every token request one rotation",
			st.Reuses, st.TokenRequests, st.Refreshes, st.Rotations)
	}
	if st.Rotations != 4 {
		t.Errorf("rotations = %d, want 4: one per event (expired when stored, due while in use, refused twice)", st.Rotations)
	}
	if requests < int64(n)*10 {
		t.Errorf("only %d requests: the run proved little", requests)
	}
	r.expectStoredCurrent()
	r.end()
}

// killedWhileRefreshing: see RunProcesses.
func killedWhileRefreshing(t *testing.T, k *kit) {
	r := k.begin(t, refreshtest.Options{}, nil)
	const g = 4
	ps := r.start(3, g, false)
	hung := r.srv.hangNext()
	r.srv.RevokeAccessTokens()
	victim := r.await(hung, ps)
	victim.Kill(t)
	survivors := without(ps, victim)
	r.awaitServed("the survivors refreshing after the kill", 1, g, survivors...)

	for i, rep := range procs.Finish(t, survivors...) {
		// Requests that waited for the victim's lock may have failed
		// with their timeout; none may need a new login.
		t.Logf("worker %s: %d requests, %d failed", survivors[i].ID, rep.Requests, rep.Failures)
		if rep.Requests == 0 || rep.Reauth != 0 {
			t.Errorf("worker %s: %d requests, %d re-authentication errors; want some, and none; first error: %s",
				survivors[i].ID, rep.Requests, rep.Reauth, rep.FirstErr)
		}
		r.expectNoLeaseLost(survivors[i], rep)
	}
	st := r.srv.Stats()
	t.Logf("after the kill of %s: %d token requests, %d rotations, %d reuses", victim.ID, st.TokenRequests, st.Rotations, st.Reuses)
	if st.Reuses != 0 || st.Rotations != 1 || st.Refreshes != 1 {
		t.Errorf("reuses = %d, rotations = %d, refreshes = %d; want 0, 1 and 1", st.Reuses, st.Rotations, st.Refreshes)
	}
	r.expectStoredCurrent()
	r.end()
}

// await returns the worker whose ID comes on ch.
func (r *scene) await(ch <-chan string, ps []*procs.Proc) *procs.Proc {
	r.t.Helper()
	var id string
	procs.Await(r.t, "a token request reaching the server", func() bool {
		select {
		case id = <-ch:
			return true
		default:
			return false
		}
	}, ps...)
	for _, p := range ps {
		if p.ID == id {
			return p
		}
	}
	r.t.Fatalf("the token request came from %q, no worker of this scenario", id)
	return nil
}

func without(ps []*procs.Proc, p *procs.Proc) []*procs.Proc {
	var rest []*procs.Proc
	for _, q := range ps {
		if q != p {
			rest = append(rest, q)
		}
	}
	return rest
}

// killedBeforeSave: see RunProcesses.
func killedBeforeSave(t *testing.T, k *kit) {
	r := k.begin(t, refreshtest.Options{}, nil)
	const n = 3
	ps := r.start(n, 4, true)
	r.srv.RevokeAccessTokens()
	victim := procs.First(t, "a worker paused in its save", func(s procs.State) bool { return s.Paused }, ps...)
	r.srv.lose(victim.ID, "its holder was killed between the server's answer and its save")
	victim.Kill(t)
	survivors := without(ps, victim)
	r.awaitReauth("every survivor told to log in again", survivors)

	for i, rep := range procs.Finish(t, survivors...) {
		if rep.Reauth == 0 {
			t.Errorf("worker %s: no ErrReauthRequired (first error: %q)", survivors[i].ID, rep.FirstErr)
		}
	}
	st := r.srv.Stats()
	t.Logf("after the kill of %s: %d token requests, %d rotations, %d reuses, %d families revoked",
		victim.ID, st.TokenRequests, st.Rotations, st.Reuses, st.FamiliesRevoked)
	// One rotation (the victim's), then at most one refused refresh per
	// survivor: no loop.
	if st.TokenRequests > n || st.FamiliesRevoked > 1 {
		t.Errorf("token requests = %d, families revoked = %d; want at most %d and 1", st.TokenRequests, st.FamiliesRevoked, n)
	}
	if got := r.stored(); got.RefreshToken != r.seed.RefreshToken {
		t.Errorf("the store holds %s, want the token of before the kill %s, intact", fps(got), fps(r.seed))
	}
	r.end()
}
