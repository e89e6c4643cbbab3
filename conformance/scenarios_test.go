package conformance_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// get makes one request to the API through client; anything but a 200 is
// an error.
func get(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("API answered %d", resp.StatusCode)
	}
	return nil
}

// outcome says briefly how a request or a refresh ended.
func outcome(err error) string {
	var rerr *refresh.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &rerr) && rerr.Code != "":
		s := fmt.Sprintf("HTTP %d %s", rerr.StatusCode, rerr.Code)
		if errors.Is(err, refresh.ErrReauthRequired) {
			s += " (ErrReauthRequired)"
		}
		return s
	default:
		return err.Error()
	}
}

// report is the outcome of a run of requests (also what a worker process
// prints).
type report struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	Reauth   int64  `json:"reauth"` // failures that were ErrReauthRequired
	FirstErr string `json:"first_err,omitempty"`
}

// hammer sends requests to url from goroutines until ctx ends, each
// goroutine pausing pace between its requests (the machine running the
// tests may have 2 CPUs and the race detector on).
func hammer(ctx context.Context, client *http.Client, url string, goroutines int, pace time.Duration) report {
	var requests, failures, reauth atomic.Int64
	var first sync.Once
	var firstErr string
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				err := get(ctx, client, url)
				if ctx.Err() != nil {
					return // stopping; not a failure
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					if errors.Is(err, refresh.ErrReauthRequired) {
						reauth.Add(1)
					}
					first.Do(func() { firstErr = err.Error() })
				}
				select {
				case <-time.After(pace):
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()
	return report{Requests: requests.Load(), Failures: failures.Load(), Reauth: reauth.Load(), FirstErr: firstErr}
}

// newEngine returns an engine with an in-memory store that refreshes at s
// and names itself engine in the X-Engine header, holding tok.
func newEngine(t *testing.T, s *fositeServer, engine string, tok *oauth2.Token, hooks refresh.Hooks) *refresh.Engine {
	t.Helper()
	eng, err := refresh.New(refresh.Config{Endpoint: s.formEndpoint(engine), Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.SetToken(context.Background(), refresh.DefaultKey, tok); err != nil {
		t.Fatal(err)
	}
	return eng
}

// refreshBounds is the range of refreshes a run of dur may make, with
// fosite's rounding: a lifespan L gives expires_in L-1 or L seconds (expiry
// rounded to the second, expires_in truncated), and the engine refreshes at
// half of it.
func refreshBounds(dur, lifespan time.Duration, expiresIn map[int64]int64) (lo, hi int64) {
	shortest := int64(lifespan / time.Second)
	for e := range expiresIn {
		shortest = min(shortest, e)
	}
	shortest = max(shortest, 1)
	lo = int64(dur / lifespan)
	hi = int64(dur/(time.Duration(shortest)*time.Second/2)) + 3
	return lo, hi
}

// Scenario 1: steady traffic through one engine with short access tokens.
const (
	steadyDuration   = 20 * time.Second // ≤ 25 s: CI is time-bounded
	steadyLifespan   = 3 * time.Second
	steadyGoroutines = 24
	steadyPace       = 5 * time.Millisecond
)

// TestSteadyTraffic: 24 goroutines for 20 s with 3 s access tokens
// (client_secret_basic through oauth2.Config): every request succeeds,
// fosite sees no reuse and no error, and the engine refreshes about every
// half lifetime (the default 60 s skew is clamped to half of expires_in).
func TestSteadyTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 20 s")
	}
	s := newFositeServer(t, serverOptions{accessLifespan: steadyLifespan})
	eng, err := refresh.New(refresh.Config{OAuth2: s.oauth2Config()})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.SetToken(context.Background(), refresh.DefaultKey, s.login(t)); err != nil {
		t.Fatal(err)
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})

	before := s.counts()
	ctx, cancel := context.WithTimeout(context.Background(), steadyDuration)
	defer cancel()
	rep := hammer(ctx, client, s.URL+"/api", steadyGoroutines, steadyPace)
	d := s.counts().sub(before)
	lo, hi := refreshBounds(steadyDuration, steadyLifespan, d.ExpiresIn)
	t.Logf("steady traffic (%d goroutines, %v, %v access tokens): %s; expires_in seen %v, refreshes expected %d..%d",
		steadyGoroutines, steadyDuration, steadyLifespan, d.summary(rep.Requests, rep.Failures), d.ExpiresIn, lo, hi)

	if rep.Failures != 0 {
		t.Errorf("%d of %d requests failed; first: %s", rep.Failures, rep.Requests, rep.FirstErr)
	}
	expectClean(t, d)
	if d.Refreshes < lo || d.Refreshes > hi {
		t.Errorf("refreshes = %d, want %d..%d for %v of %v tokens", d.Refreshes, lo, hi, steadyDuration, steadyLifespan)
	}
	if rep.Requests < 1000 {
		t.Errorf("only %d requests: the run proved little", rep.Requests)
	}
}

// TestRevokedAccessToken (scenario 2): an access token revoked at fosite
// before its expiry costs one 401 and exactly one refresh; the request
// succeeds. The token is revoked in fosite's storage; revoking it through
// fosite's RFC 7009 endpoint revokes the grant (TestRevokedAccessTokenRFC7009).
func TestRevokedAccessToken(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	eng := newEngine(t, s, "A", s.login(t), refresh.Hooks{})
	client := eng.Client(nil)
	ctx := context.Background()
	if err := get(ctx, client, s.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	old, err := eng.Token(ctx, refresh.DefaultKey)
	if err != nil {
		t.Fatal(err)
	}

	before := s.counts()
	s.revokeAccessInStorage(t, old.AccessToken)
	var failures int64
	for i := range 3 { // the first absorbs the 401; the others use the new token
		if err := get(ctx, client, s.URL+"/api"); err != nil {
			failures++
			t.Errorf("request %d after the revocation: %v", i, err)
		}
	}
	d := s.counts().sub(before)
	t.Logf("revoked access token: %s", d.summary(3, failures))

	expectClean(t, d)
	if d.RefreshRequests != 1 || d.Refreshes != 1 {
		t.Errorf("refresh grants = %d, refreshes = %d; want exactly 1 and 1", d.RefreshRequests, d.Refreshes)
	}
	if d.APIRejected != 1 || d.APIRequests != 4 {
		t.Errorf("API: %d requests, %d rejected; want 4 and 1 (one retry)", d.APIRequests, d.APIRejected)
	}
	if cur, _ := eng.Token(ctx, refresh.DefaultKey); cur == nil || cur.RefreshToken == old.RefreshToken {
		t.Error("the engine did not adopt the rotated refresh token")
	}
}

// TestRevokedAccessTokenRFC7009 documents what fosite does when the access
// token is revoked through its RFC 7009 endpoint: it revokes the refresh
// token of the grant too (RFC 7009 §2.1 allows it), and reports the next
// refresh as a reuse. The engine makes that one refresh, gets invalid_grant
// and needs re-authentication.
func TestRevokedAccessTokenRFC7009(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	eng := newEngine(t, s, "A", s.login(t), refresh.Hooks{})
	client := eng.Client(nil)
	ctx := context.Background()
	if err := get(ctx, client, s.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	old, _ := eng.Token(ctx, refresh.DefaultKey)

	before := s.counts()
	s.revokeAtEndpoint(t, old.AccessToken, "access_token")
	err := get(ctx, client, s.URL+"/api")
	d := s.counts().sub(before)
	t.Logf("access token revoked through RFC 7009: %s; the request: %s", d.summary(1, 1), outcome(err))

	if !errors.Is(err, refresh.ErrReauthRequired) {
		t.Errorf("request after the revocation: %v; want ErrReauthRequired", err)
	}
	if d.RefreshRequests != 1 || d.Errors["invalid_grant"] != 1 || d.Reuses != 1 || d.Repeats != 0 {
		t.Errorf("refresh grants = %d, invalid_grant = %d, reuses detected = %d, presented twice = %d; want 1, 1, 1, 0",
			d.RefreshRequests, d.Errors["invalid_grant"], d.Reuses, d.Repeats)
	}
}

const stormGoroutines = 200

// TestStorm (scenario 3): 200 goroutines whose token fosite no longer
// accepts get their 401s at the same time: exactly one refresh at fosite,
// every request succeeds.
func TestStorm(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	eng := newEngine(t, s, "A", s.login(t), refresh.Hooks{})
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	ctx := context.Background()
	if err := get(ctx, client, s.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	old, _ := eng.Token(ctx, refresh.DefaultKey)

	before := s.counts()
	s.revokeAccessInStorage(t, old.AccessToken)
	start := make(chan struct{})
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range stormGoroutines {
		wg.Go(func() {
			<-start
			if err := get(ctx, client, s.URL+"/api"); err != nil {
				if failures.Add(1) == 1 {
					t.Errorf("request failed: %v", err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	d := s.counts().sub(before)
	t.Logf("storm of %d: %s", stormGoroutines, d.summary(stormGoroutines, failures.Load()))

	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed", n, stormGoroutines)
	}
	expectClean(t, d)
	if d.RefreshRequests != 1 || d.Refreshes != 1 {
		t.Errorf("refresh grants = %d, refreshes = %d; want exactly 1 and 1", d.RefreshRequests, d.Refreshes)
	}
	if d.APIRejected < 1 {
		t.Error("no request was rejected: the storm did not happen")
	}
}

// afterRecheck is longer than the engine's 5 s between looks at the store
// of a key that needs re-authentication.
const afterRecheck = 5500 * time.Millisecond

// TestRevokedRefreshToken (scenario 5): the refresh token revoked through
// fosite's RFC 7009 endpoint (which revokes the grant's access token too):
// the next request costs one refresh, fosite answers invalid_grant, the
// request fails with ErrReauthRequired, and then no request calls the token
// endpoint again, before or after the engine looks at the store again.
func TestRevokedRefreshToken(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	var reauthHook atomic.Int64
	eng := newEngine(t, s, "A", s.login(t), refresh.Hooks{ReauthRequired: func(string, error) { reauthHook.Add(1) }})
	client := eng.Client(nil)
	ctx := context.Background()
	if err := get(ctx, client, s.URL+"/api"); err != nil {
		t.Fatal(err)
	}
	old, _ := eng.Token(ctx, refresh.DefaultKey)

	before := s.counts()
	s.revokeAtEndpoint(t, old.RefreshToken, "refresh_token")
	err := get(ctx, client, s.URL+"/api")
	if !errors.Is(err, refresh.ErrReauthRequired) {
		t.Errorf("request after the revocation: %v; want ErrReauthRequired", err)
	}
	var rerr *refresh.Error
	if !errors.As(err, &rerr) || rerr.Code != "invalid_grant" {
		t.Errorf("error = %v; want a *refresh.Error with code invalid_grant", err)
	}
	mid := s.counts()
	d := mid.sub(before)

	const goroutines, each = 10, 5
	var later, latched atomic.Int64
	burst := func() {
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range each {
					later.Add(1)
					if err := get(ctx, client, s.URL+"/api"); errors.Is(err, refresh.ErrReauthRequired) {
						latched.Add(1)
					} else {
						t.Errorf("later request: %v; want ErrReauthRequired", err)
					}
				}
			})
		}
		wg.Wait()
	}
	burst()
	time.Sleep(afterRecheck)
	burst()
	after := s.counts().sub(mid)
	t.Logf("revoked refresh token: %s; then %d more requests (%d with ErrReauthRequired) made %d token-endpoint calls",
		d.summary(1, 1), later.Load(), latched.Load(), after.TokenRequests)

	// fosite cannot tell a revoked refresh token from a used one: it
	// reports the refresh as a reuse and revokes the (already revoked)
	// grant again. The client presented the token once.
	if d.RefreshRequests != 1 || d.Errors["invalid_grant"] != 1 || d.Repeats != 0 {
		t.Errorf("refresh grants = %d, invalid_grant = %d, presented twice = %d; want 1, 1, 0",
			d.RefreshRequests, d.Errors["invalid_grant"], d.Repeats)
	}
	if after.TokenRequests != 0 {
		t.Errorf("%d token-endpoint calls after ErrReauthRequired; want 0", after.TokenRequests)
	}
	eng.Close(ctx) // hooks run on the event goroutine: Close delivers what is queued
	if n := reauthHook.Load(); n != 1 {
		t.Errorf("ReauthRequired hook called %d times; want 1", n)
	}
}

// TestTwoEnginesRace (scenario 6): two engines with a MemoryStore each (no
// shared store) refresh the same refresh token. Without a shared store the
// loser cannot adopt the winner's token; whatever fosite answers, neither
// engine may send that refresh token twice.
func TestTwoEnginesRace(t *testing.T) {
	for _, tc := range []struct {
		name string
		// simultaneous: both refreshes read the refresh token at fosite
		// before either rotates it (a barrier in the storage holds the
		// first); otherwise B starts after A's refresh is done.
		simultaneous  bool
		transactional bool
	}{
		{"simultaneous_memorystore", true, false},
		{"simultaneous_transactional", true, true},
		{"after_rotation", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFositeServer(t, serverOptions{accessLifespan: time.Hour, transactional: tc.transactional})
			tok := s.login(t)
			engines := map[string]*refresh.Engine{
				"A": newEngine(t, s, "A", tok, refresh.Hooks{}),
				"B": newEngine(t, s, "B", tok, refresh.Hooks{}),
			}
			ctx := context.Background()
			before := s.counts()
			got := map[string]*oauth2.Token{}
			errs := map[string]error{}
			var mu sync.Mutex
			refreshOne := func(name string) {
				nt, err := engines[name].Refresh(ctx, refresh.DefaultKey, nil)
				mu.Lock()
				got[name], errs[name] = nt, err
				mu.Unlock()
			}
			if tc.simultaneous {
				s.store.barrier.Store(newBarrier(2))
				var wg sync.WaitGroup
				wg.Go(func() { refreshOne("A") })
				wg.Go(func() { refreshOne("B") })
				wg.Wait()
				s.store.barrier.Store(nil)
			} else {
				refreshOne("A")
				refreshOne("B")
			}
			race := s.counts().sub(before)

			// Then each engine is used: a request through its client,
			// and a token request.
			var failures int64
			used := map[string]error{}
			for _, name := range slices.Sorted(maps.Keys(engines)) {
				used[name] = get(ctx, engines[name].Client(nil), s.URL+"/api")
				if used[name] != nil {
					failures++
				}
				engines[name].Token(ctx, refresh.DefaultKey)
			}
			d := s.counts().sub(before)
			t.Logf("%s: refresh A: %s, B: %s; then a request: A: %s, B: %s; %s; refresh grants by engine %v",
				tc.name, outcome(errs["A"]), outcome(errs["B"]), outcome(used["A"]), outcome(used["B"]),
				d.summary(2, failures), d.ByEngine)

			// Neither engine presented the contested refresh token twice.
			if race.ByEngine["A"] != 1 || race.ByEngine["B"] != 1 || race.Repeats != 1 {
				t.Errorf("race: refresh grants by engine %v, tokens presented twice %d; want A 1, B 1 and 1 (each engine once)",
					race.ByEngine, race.Repeats)
			}
			switch tc.name {
			case "simultaneous_memorystore":
				// fosite's MemoryStore rotates blindly: there is no loser.
				if errs["A"] != nil || errs["B"] != nil || race.Refreshes != 2 || race.Reuses != 0 || len(race.Errors) != 0 {
					t.Errorf("race: A %v, B %v, %d refreshes, %d reuses, errors %s; want two successes",
						errs["A"], errs["B"], race.Refreshes, race.Reuses, race.errors())
				}
			case "simultaneous_transactional":
				winner, loser := "A", "B"
				if errs["A"] != nil {
					winner, loser = "B", "A"
				}
				if errs[winner] != nil || !errors.Is(errs[loser], refresh.ErrReauthRequired) {
					t.Errorf("race: %s %v, %s %v; want one success and one ErrReauthRequired", winner, errs[winner], loser, errs[loser])
				}
				if race.Errors["invalid_request"] != 1 || race.Conflicts != 1 || race.Refreshes != 1 || race.Reuses != 0 || race.FamilyRevocations != 0 {
					t.Errorf("race: errors %s, %d refused rotations, %d refreshes, %d reuses, %d family revocations; want invalid_request×1, 1, 1, 0, 0",
						race.errors(), race.Conflicts, race.Refreshes, race.Reuses, race.FamilyRevocations)
				}
				if used[winner] != nil || !errors.Is(used[loser], refresh.ErrReauthRequired) {
					t.Errorf("after: %s %v, %s %v; want success and ErrReauthRequired", winner, used[winner], loser, used[loser])
				}
				if d.ByEngine[loser] != 1 || d.ByEngine[winner] != 1 {
					t.Errorf("refresh grants by engine %v; want 1 each", d.ByEngine)
				}
			case "after_rotation":
				// A stray reuse: fosite revokes the grant, A's new
				// tokens included.
				if errs["A"] != nil || !errors.Is(errs["B"], refresh.ErrReauthRequired) {
					t.Errorf("race: A %v, B %v; want success and ErrReauthRequired", errs["A"], errs["B"])
				}
				if race.Errors["invalid_grant"] != 1 || race.Reuses != 1 || race.FamilyRevocations != 1 {
					t.Errorf("race: errors %s, %d reuses detected, %d family revocations; want invalid_grant×1, 1, 1",
						race.errors(), race.Reuses, race.FamilyRevocations)
				}
				if !errors.Is(used["A"], refresh.ErrReauthRequired) || !errors.Is(used["B"], refresh.ErrReauthRequired) {
					t.Errorf("after: A %v, B %v; want ErrReauthRequired for both (the grant is revoked)", used["A"], used["B"])
				}
				// A refreshed once more with its own (revoked) token; B
				// did not call again.
				if d.ByEngine["A"] != 2 || d.ByEngine["B"] != 1 || d.Repeats != 1 {
					t.Errorf("refresh grants by engine %v, presented twice %d; want A 2, B 1, 1", d.ByEngine, d.Repeats)
				}
			}
		})
	}
}
