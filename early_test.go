package refresh

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"

	"golang.org/x/oauth2"
)

// slowEndpoint is srv's in-memory token endpoint answering after d, on the
// bubble's clock.
func slowEndpoint(srv *testServer, d time.Duration) Endpoint {
	ep := memEndpoint(srv)
	return EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		time.Sleep(d)
		return ep.Refresh(ctx, tok)
	})
}

// flightLog counts the engine's refresh flights, their outcomes and the
// callers that waited for them.
type flightLog struct {
	mu       sync.Mutex
	outcomes map[Outcome]int
	waited   int // callers that joined a flight, over all flights
}

func (l *flightLog) event(ev Event) {
	if ev.Kind != EventRefresh {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.outcomes == nil {
		l.outcomes = map[Outcome]int{}
	}
	l.outcomes[ev.Outcome]++
	l.waited += len(ev.Callers)
}

func (l *flightLog) count(o Outcome) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes[o]
}

// TestEarlyRefreshBlocksNobody is the target: with a token endpoint
// that takes 1.5 s and steady traffic from 8 goroutines for an hour of
// 10-minute tokens, no request waits for a refresh (each one's latency,
// exact on the bubble's clock, is the API's 10 ms alone), no caller joins a
// flight, and each rotation costs one token request.
func TestEarlyRefreshBlocksNobody(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 10 * time.Minute})
	synctest.Test(t, func(t *testing.T) {
		var log flightLog
		e, err := New(Config{Endpoint: slowEndpoint(srv, 1500*time.Millisecond), OnEvent: log.event})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.SetToken(t.Context(), "", srv.Token()); err != nil {
			t.Fatal(err)
		}
		const apiTime = 10 * time.Millisecond
		api := &apiStub{srv: srv, before: func(*http.Request) { time.Sleep(apiTime) }}
		c := &http.Client{Transport: &Transport{Engine: e, Base: api}}
		var worst atomic.Int64
		var failed atomic.Int32
		end := time.Now().Add(time.Hour)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(end) {
					start := time.Now()
					if code, _, err := get(t, c, "http://api.test/"); code != 200 {
						t.Errorf("request: %d %v", code, err)
						failed.Add(1)
						return
					}
					if d := int64(time.Since(start)); d > worst.Load() {
						worst.Store(d)
					}
					time.Sleep(time.Second)
				}
			})
		}
		wg.Wait()
		FlushEvents(e)
		if got := time.Duration(worst.Load()); got != apiTime {
			t.Errorf("worst request latency = %v, want the API's %v: a request waited for a refresh", got, apiTime)
		}
		st := srv.Stats()
		// A rotation every 8.5 to 9 minutes (the 60 s skew and up to 30 s of
		// jitter before each 10-minute expiry): 6 or 7 in the hour.
		if n := log.count(OutcomeRefreshed); n < 6 || n > 7 || st.TokenRequests != n {
			t.Errorf("refreshes = %d, token requests = %d; want 6 or 7, one per rotation", n, st.TokenRequests)
		}
		if log.waited != 0 {
			t.Errorf("callers that waited for a flight = %d, want 0", log.waited)
		}
		if st.Served401 != 0 {
			t.Errorf("401s = %d, want 0", st.Served401)
		}
		e.Close(context.Background())
	})
}

// TestIdleKeyNotRefreshed: a refresh time passing is not a reason to call
// the token endpoint; only a request that finds its token due is. An idle
// key costs nothing, and its next request refreshes once.
func TestIdleKeyNotRefreshed(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 10 * time.Minute})
	synctest.Test(t, func(t *testing.T) {
		e, _ := New(Config{Endpoint: memEndpoint(srv)})
		e.SetToken(t.Context(), "", srv.Token())
		time.Sleep(2 * time.Hour)
		if n := srv.Stats().TokenRequests; n != 0 {
			t.Fatalf("token requests while idle = %d, want 0", n)
		}
		if _, err := e.Token(t.Context(), ""); err != nil {
			t.Fatal(err)
		}
		if n := srv.Stats().TokenRequests; n != 1 {
			t.Errorf("token requests after the idle key's next use = %d, want 1", n)
		}
		e.Close(context.Background())
	})
}

// tryLockingStore is lockingStore with TryLock.
type tryLockingStore struct {
	lockingStore
	tries atomic.Int64
}

func (s *tryLockingStore) TryLock(ctx context.Context, key string) (func(), bool, error) {
	s.tries.Add(1)
	held, cancel := context.WithCancel(ctx)
	cancel() // Lock takes a free lock at once, and gives up on a held one
	unlock, err := s.Lock(held, key)
	if err != nil {
		return nil, false, nil
	}
	return unlock, true, nil
}

// TestEarlyRefreshDefersToLockHolder: while another process holds the key's
// lock (it is refreshing, or keeps the lock for a save it retries), a due
// but valid token keeps serving without anyone waiting, the early refresh
// is deferred (a TryLock, not a wait, and no cooldown), and once the token
// expires requests wait for the lock and get a new token: none fails. The
// engine used to wait a second for the lock, then cool down for half a
// second, failing the requests whose token expired meanwhile.
func TestEarlyRefreshDefersToLockHolder(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 10 * time.Minute})
	for _, tc := range []struct {
		name string
		try  bool
	}{{"TryLocker", true}, {"Locker", false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testDeferToHolder(t, srv, tc.try) })
		})
	}
}

func testDeferToHolder(t *testing.T, srv *testServer, try bool) {
	ts := new(tryLockingStore)
	var store TokenStore = &ts.lockingStore
	if try {
		store = ts
	}
	var log flightLog
	e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store, ExpirySkew: 2 * time.Second, OnEvent: log.event})
	tok := srv.Token()
	if err := e.SetToken(t.Context(), "", tok); err != nil {
		t.Fatal(err)
	}
	// Another process takes the lock just before the refresh time and
	// keeps it until 300 ms after the expiry.
	time.Sleep(time.Until(tok.Expiry.Add(-4 * time.Second)))
	unlock, err := ts.lockingStore.Lock(t.Context(), DefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(time.Until(tok.Expiry.Add(300*time.Millisecond)), unlock)
	c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
	for time.Now().Before(tok.Expiry.Add(time.Second)) {
		start := time.Now()
		code, _, err := get(t, c, "http://api.test/")
		switch waited := time.Since(start); {
		case code != 200:
			t.Fatalf("%v before expiry: %d %v", time.Until(tok.Expiry), code, err)
		case waited > 0 && start.Before(tok.Expiry):
			t.Errorf("%v before expiry: the request waited %v", time.Until(tok.Expiry), waited)
		}
		time.Sleep(50 * time.Millisecond)
	}
	FlushEvents(e)
	if n := log.count(OutcomeDeferred); n == 0 {
		t.Errorf("deferred early refreshes = 0, want some")
	}
	if n := log.count(OutcomeRefreshed); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if try && ts.tries.Load() == 0 {
		t.Errorf("TryLock calls = 0: the early refresh waited for the lock")
	}
	e.Close(context.Background())
}

// TestRefreshJitter: each token's refresh time is drawn between the expiry
// minus the skew and up to half the skew earlier, never before half the
// lifetime, and the draws differ, so that keys and processes spread out.
func TestRefreshJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			return nil, nil
		})})
		for _, tc := range []struct {
			life             time.Duration
			earliest, latest time.Duration // before the expiry
			distinct         int           // at least, of 1000 refresh times
		}{
			{time.Hour, 90 * time.Second, 60 * time.Second, 900},
			{150 * time.Second, 75 * time.Second, 60 * time.Second, 400}, // half the lifetime caps half the draws
			{3 * time.Second, 1500 * time.Millisecond, 1500 * time.Millisecond, 1},
		} {
			seen := map[int64]bool{}
			for range 1000 {
				tok := &oauth2.Token{AccessToken: "at", Expiry: time.Now().Add(tc.life), ExpiresIn: int64(tc.life / time.Second)}
				before := time.Duration(mono()+int64(tc.life)) - time.Duration(e.newSnapshot("k", tok).refreshAt.Load())
				if before < tc.latest || before > tc.earliest {
					t.Fatalf("%v token: refreshed %v before its expiry, want %v to %v", tc.life, before, tc.latest, tc.earliest)
				}
				seen[int64(before)] = true
			}
			if len(seen) < tc.distinct {
				t.Errorf("%v token: %d distinct refresh times in 1000, want at least %d", tc.life, len(seen), tc.distinct)
			}
		}
	})
}

// TestEarlyRefreshFailureReported: an early refresh that fails temporarily
// leaves the valid token serving, and its event says it failed, with the
// error: a dashboard sees failures before the token expires.
func TestEarlyRefreshFailureReported(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 10 * time.Minute})
	synctest.Test(t, func(t *testing.T) {
		var failed []error
		e, _ := New(Config{Endpoint: memEndpoint(srv), RefreshAttempts: 1, OnEvent: func(ev Event) {
			if ev.Kind == EventRefresh && ev.Outcome == OutcomeTemporary {
				failed = append(failed, ev.Err)
			}
		}})
		defer e.Close(context.Background())
		e.SetToken(t.Context(), "", srv.Token())
		srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultUnavailable})
		time.Sleep(9 * time.Minute)
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
		if code, _, err := get(t, c, "http://api.test/"); code != 200 {
			t.Fatalf("request with the valid token: %d %v", code, err)
		}
		synctest.Wait()
		FlushEvents(e)
		var x *Error
		if len(failed) != 1 || !errors.As(failed[0], &x) || !x.Temporary() {
			t.Errorf("events of the failed early refresh: %v; want one temporary *Error", failed)
		}
	})
}
