package refresh

// One refresh per rejected token: concurrent callers share one flight, a
// late 401 for a token already replaced causes none, and a flight outlives
// the caller that started it.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// TestStorm: 1,000 goroutines that all get a 401 for the same token cause
// exactly one token-endpoint call, and every request succeeds.
func TestStorm(t *testing.T) {
	const n = 1000
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()

	// Every request with the revoked token waits until all n have been
	// sent, so all n see their 401 at the same moment.
	var arrived sync.WaitGroup
	arrived.Add(n)
	var once sync.Map
	api := &apiStub{srv: as, before: func(r *http.Request) {
		id := r.Header.Get("X-Id")
		if _, seen := once.LoadOrStore(id, true); !seen {
			arrived.Done()
			arrived.Wait()
		}
	}}
	c := &http.Client{Transport: &Transport{Engine: e, Base: api}}

	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://api.test/x", nil)
			req.Header.Set("X-Id", fmt.Sprint(i))
			resp, err := c.Do(req)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	st := as.Stats()
	if got := st.TokenRequests; got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
	if got := failed.Load(); got != 0 {
		t.Errorf("failed requests = %d, want 0", got)
	}
	if got := st.Served401; got != n {
		t.Errorf("401s served = %d, want %d (each request once, no second 401)", got, n)
	}
}

// TestLate401 pins the generation check: a 401 that arrives after the
// token was already rotated is retried with the current token, with no
// second refresh.
func TestLate401(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()

	slowSent := make(chan struct{})
	release := make(chan struct{})
	var first sync.Once
	api := &apiStub{srv: as, before: func(r *http.Request) {
		if r.Header.Get("X-Slow") != "" {
			first.Do(func() { // the slow request's first attempt only
				close(slowSent)
				<-release // answer only after the fast request refreshed
			})
		}
	}}
	c := &http.Client{Transport: &Transport{Engine: e, Base: api}}

	slowDone := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", "http://api.test/slow", nil)
		req.Header.Set("X-Slow", "1")
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("slow request: %v", err)
			slowDone <- 0
			return
		}
		resp.Body.Close()
		slowDone <- resp.StatusCode
	}()
	<-slowSent
	if code, _, err := get(t, c, "http://api.test/fast"); err != nil || code != 200 {
		t.Fatalf("fast request: %d %v", code, err)
	}
	close(release)
	if code := <-slowDone; code != 200 {
		t.Errorf("slow request status %d, want 200", code)
	}
	st := as.Stats()
	if got := st.TokenRequests; got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
	if got := st.Reuses; got != 0 {
		t.Errorf("reuses = %d, want 0", got)
	}
}

// TestEngineRefreshGeneration: Refresh for a token that is no longer the
// current one returns the current one without calling the endpoint.
func TestEngineRefreshGeneration(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	old, _ := e.Token(t.Context(), "")
	n1, err := e.Refresh(t.Context(), "", old)
	if err != nil || n1.AccessToken == old.AccessToken {
		t.Fatalf("Refresh = %v, %v", n1, err)
	}
	n2, err := e.Refresh(t.Context(), "", old) // a late report of the old token
	if err != nil || n2.AccessToken != n1.AccessToken {
		t.Fatalf("late Refresh = %v, %v; want the current token", n2, err)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// TestCancelledCallerDetachedRefresh: the caller that starts a refresh and
// then gives up gets ctx.Err() at once; the refresh completes, is saved,
// and serves the next caller.
func TestCancelledCallerDetachedRefresh(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(MemoryStore)
	e := newEngine(t, as, Config{Store: store})
	gate := as.Hold()
	defer gate.Release()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := e.Refresh(ctx, "", as.token())
		done <- err
	}()
	waitFor(t, "the refresh reaches the token endpoint", func() bool { return gate.Held() == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled caller still waiting for the refresh")
	}
	first := as.token().AccessToken // the server rotates only once released
	gate.Release()
	// The refresh goes on without its caller and publishes the new token.
	waitFor(t, "the detached refresh publishes its token", func() bool {
		tok, err := e.Token(context.Background(), "") // the token in memory: valid, so nothing is loaded or refreshed
		return err == nil && tok.AccessToken != first
	})
	tok, err := e.Token(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := as.token(); tok.AccessToken != want.AccessToken {
		t.Errorf("token after refresh %q, want %q", tok.AccessToken, want.AccessToken)
	}
	stored, _ := store.Load(context.Background(), DefaultKey)
	if stored.RefreshToken != as.token().RefreshToken {
		t.Errorf("refresh was not persisted")
	}
	if got := as.Stats().TokenRequests; got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
}

// TestRefreshTimeout: a refresh ends after RefreshTimeout even though no
// caller gives up, and the error is temporary.
func TestRefreshTimeout(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	gate := as.Hold()
	defer gate.Release()
	e := newEngine(t, as, Config{RefreshTimeout: 50 * time.Millisecond})
	_, err := e.Refresh(context.Background(), "", as.token())
	var x *Error
	if !errors.As(err, &x) || !x.Temporary() {
		t.Errorf("err = %v, want a temporary *Error", err)
	}
}

// TestHookMayCallEngine: a hook that asks the engine for the same key does
// not deadlock on the flight that runs it.
func TestHookMayCallEngine(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	var e *Engine
	done := make(chan error, 1)
	e = newEngine(t, as, Config{Hooks: Hooks{ReauthRequired: func(key string, err error) {
		_, terr := e.Token(context.Background(), key)
		done <- terr
	}}})
	as.RevokeGrants() // the refresh token is refused
	if _, err := e.Refresh(t.Context(), "", nil); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("err = %v, want ErrReauthRequired", err)
	}
	if err := <-done; !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Token from hook: err = %v, want ErrReauthRequired", err)
	}
}
