package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"

	"golang.org/x/oauth2"
)

// keysHeld is how many keys other than DefaultKey have an entry in e.
func keysHeld(e *Engine) int { return e.keys.len() }

// TestUnknownKeyLeavesNothing: a request for a key that has no token fails
// with ErrReauthRequired and leaves no entry behind, with the engine's own
// store and with another.
func TestUnknownKeyLeavesNothing(t *testing.T) {
	for name, store := range map[string]TokenStore{"own": nil, "MemoryStore": new(MemoryStore)} {
		t.Run(name, func(t *testing.T) {
			e, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
				t.Error("token endpoint called")
				return nil, errors.New("no")
			}), Store: store})
			c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(func(r *http.Request) (*http.Response, error) {
				t.Error("API called without a token")
				return response(r, 200, nil, ""), nil
			})}}
			for i := range 1000 {
				key := fmt.Sprintf("nobody-%d", i)
				if _, err := e.Token(t.Context(), key); !errors.Is(err, ErrReauthRequired) {
					t.Fatalf("Token(%q) = %v, want ErrReauthRequired", key, err)
				}
				req, _ := http.NewRequestWithContext(WithKey(t.Context(), key), "GET", "https://api.test/", nil)
				if _, err := c.Do(req); !errors.Is(err, ErrReauthRequired) {
					t.Fatalf("request for %q: %v, want ErrReauthRequired", key, err)
				}
			}
			if n, st := keysHeld(e), e.Stats(); n != 0 || st.Keys != 0 || st.ReauthRequired != 0 {
				t.Errorf("after 1000 unknown keys: %d entries, Stats %+v; want none", n, st)
			}
		})
	}
}

// TestForget: Forget drops a key from memory, and its next use loads it
// from the store again; a token whose save is pending is saved first, and
// if it cannot be, the key is kept (ErrNotSaved) and keeps serving it.
func TestForget(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(fakeStore)
	e := newEngine(t, srv, Config{Store: store})
	defer e.Close(context.Background())
	const key = "alice"
	store.Save(t.Context(), key, srv.Token())
	first, err := e.Token(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	loads := store.loads.Load()
	if err := e.Forget(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if n := keysHeld(e); n != 0 {
		t.Fatalf("entries after Forget = %d, want 0", n)
	}
	again, err := e.Token(t.Context(), key)
	switch {
	case err != nil:
		t.Fatal(err)
	case store.loads.Load() != loads+1:
		t.Errorf("store loads after Forget = %d, want %d: the key was not reloaded", store.loads.Load(), loads+1)
	case !SameToken(first, again):
		t.Errorf("token after Forget is not the stored one")
	}

	// A pending save: kept until it is saved.
	store.failSaves(errors.New("store down"))
	rotated, err := e.Refresh(t.Context(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Forget(t.Context(), key); !errors.Is(err, ErrNotSaved) {
		t.Fatalf("Forget with a pending save = %v, want ErrNotSaved", err)
	}
	if got, _ := e.Token(t.Context(), key); !SameToken(got, rotated) {
		t.Fatalf("after a refused Forget the key does not serve its newest token")
	}
	store.failSaves(nil)
	if err := e.Forget(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if stored, _ := store.MemoryStore.Load(t.Context(), key); !SameToken(stored, rotated) {
		t.Errorf("Forget did not save the pending token first")
	}
	if n := keysHeld(e); n != 0 {
		t.Errorf("entries after Forget = %d, want 0", n)
	}
}

// TestForgetOwnStore: with the engine's own store, memory is the store:
// Forget keeps a key that has a token.
func TestForgetOwnStore(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	e, _ := New(Config{OAuth2: srv.Config()})
	defer e.Close(context.Background())
	tok := srv.Token()
	e.SetToken(t.Context(), "alice", tok)
	if err := e.Forget(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Token(t.Context(), "alice"); err != nil || !SameToken(got, tok) {
		t.Errorf("Token after Forget = %v; want the token: memory is the store", err)
	}
}

// TestIdleTimeout: keys unused for IdleTimeout leave memory and are
// reloaded on their next use; a key in use, and one whose save is pending,
// stay.
func TestIdleTimeout(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 24 * time.Hour})
	synctest.Test(t, func(t *testing.T) {
		store := new(fakeStore)
		e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store, IdleTimeout: time.Minute})
		defer e.Close(context.Background())
		usersWithPendingSave(t, e, store, srv, 100)
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}, Key: "user-1"}}
		for range 12 { // two minutes of use
			if code, _, err := get(t, c, "http://api.test/"); code != 200 {
				t.Fatal(code, err)
			}
			time.Sleep(10 * time.Second)
		}
		synctest.Wait()
		if n := keysHeld(e); n != 2 {
			t.Errorf("keys in memory after 2 minutes idle = %d, want 2 (the one in use, the one with a pending save)", n)
		}
		store.failSaves(nil)
		loads := store.loads.Load()
		if _, err := e.Token(t.Context(), "user-50"); err != nil {
			t.Fatal(err)
		}
		if got := store.loads.Load(); got != loads+1 {
			t.Errorf("store loads for an evicted key's next use = %d, want 1", got-loads)
		}
	})
}

// usersWithPendingSave gives e the keys user-0 to user-<n-1>, loaded from
// store, then refreshes user-0 and leaves store failing every save, so that
// user-0's save stays pending.
func usersWithPendingSave(t *testing.T, e *Engine, store *fakeStore, srv *testServer, n int) {
	t.Helper()
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		store.Save(t.Context(), key, srv.Token())
		if _, err := e.Token(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	}
	store.failSaves(errors.New("store down"))
	if _, err := e.Refresh(t.Context(), "user-0", nil); err != nil {
		t.Fatal(err)
	}
	if n := e.Stats().PendingSaves; n != 1 {
		t.Fatalf("pending saves = %d, want 1", n)
	}
}

// TestCloseEndsEverything: after Close, every call fails with ErrClosed,
// even for a key whose cached token is valid, and a new key leaves no
// entry behind.
func TestCloseEndsEverything(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	e := newEngine(t, srv, Config{})
	c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
	if code, _, err := get(t, c, "http://api.test/"); code != 200 {
		t.Fatal(code, err)
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, c, "http://api.test/"); !errors.Is(err, ErrClosed) {
		t.Errorf("request after Close: %v, want ErrClosed", err)
	}
	if _, err := e.Token(t.Context(), ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Token after Close: %v, want ErrClosed", err)
	}
	if _, err := e.Refresh(t.Context(), "", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Refresh after Close: %v, want ErrClosed", err)
	}
	if err := e.SetToken(t.Context(), "new", srv.Token()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetToken after Close: %v, want ErrClosed", err)
	}
	if _, err := e.Token(t.Context(), "new"); !errors.Is(err, ErrClosed) {
		t.Errorf("Token of a new key after Close: %v, want ErrClosed", err)
	}
	if n := keysHeld(e); n != 0 {
		t.Errorf("entries after Close = %d, want 0", n)
	}
	if n := e.sched.len(); n != 0 {
		t.Errorf("scheduled refreshes after Close = %d, want 0", n)
	}
}

// TestDeleteDuringRefresh: a key deleted from the store (a logout in
// another process) while this process refreshes it is not brought back by
// the late save, and its token in memory is never refreshed again.
func TestDeleteDuringRefresh(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(MemoryStore)
	release := make(chan struct{})
	ep := memEndpoint(srv)
	e, _ := New(Config{Store: store, Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		<-release
		return ep.Refresh(ctx, tok)
	})})
	defer e.Close(context.Background())
	const key = "alice"
	store.Save(t.Context(), key, srv.Token())
	if _, err := e.Token(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := e.Refresh(t.Context(), key, nil)
		done <- err
	}()
	waitFor(t, "the refresh to start", func() bool { return FlightCallers(e, key) == 1 })
	store.Delete(t.Context(), key)
	close(release)
	if err := <-done; !errors.Is(err, ErrReauthRequired) {
		t.Errorf("refresh across a delete = %v, want ErrReauthRequired", err)
	}
	if _, err := store.Load(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("store after the late save: %v, want ErrNotFound: the deleted key came back", err)
	}
	calls := srv.Stats().TokenRequests
	for range 3 {
		if _, err := e.Refresh(t.Context(), key, nil); !errors.Is(err, ErrReauthRequired) {
			t.Errorf("Refresh of a deleted key = %v, want ErrReauthRequired", err)
		}
	}
	if _, err := store.Load(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Errorf("store: %v, want ErrNotFound", err)
	}
	if n := srv.Stats().TokenRequests; n != calls {
		t.Errorf("token requests for the deleted key = %d, want 0", n-calls)
	}
}

// TestRejectedAcrossForget: a request sent with a key's token just before
// the key was forgotten, and rejected after, refreshes that token: the new
// entry does not adopt the rejected token back from the store.
func TestRejectedAcrossForget(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(MemoryStore)
	e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store})
	defer e.Close(context.Background())
	store.Save(t.Context(), "alice", srv.Token())
	sent, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	api := &apiStub{srv: srv, before: func(*http.Request) {
		once.Do(func() { close(sent); <-release })
	}}
	c := &http.Client{Transport: &Transport{Engine: e, Base: api, Key: "alice"}}
	done := make(chan int)
	go func() {
		code, _, _ := get(t, c, "http://api.test/")
		done <- code
	}()
	<-sent
	if err := e.Forget(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	srv.RevokeAccessTokens()
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("request rejected across a Forget: %d, want 200 after one refresh", code)
	}
	if n := srv.Stats().TokenRequests; n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
}
