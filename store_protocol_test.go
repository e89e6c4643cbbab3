package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

// lockingStore is a MemoryStore with a per-key Locker, standing in for a
// store shared by several processes (each engine plays one process).
type lockingStore struct {
	MemoryStore
	mu      sync.Mutex
	locks   map[string]chan struct{}
	held    atomic.Int64 // holders right now
	maxHeld atomic.Int64
	lockErr error
}

func (s *lockingStore) Lock(ctx context.Context, key string) (func(), error) {
	if s.lockErr != nil {
		return nil, s.lockErr
	}
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]chan struct{}{}
	}
	ch, ok := s.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		s.locks[key] = ch
	}
	s.mu.Unlock()
	select {
	case ch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if n := s.held.Add(1); n > s.maxHeld.Load() {
		s.maxHeld.Store(n)
	}
	var once sync.Once
	return func() { once.Do(func() { s.held.Add(-1); <-ch }) }, nil
}

// TestLockerOneRefreshAcrossEngines: several engines ("processes") over
// one locking store and one strict server: each rejection is refreshed
// once in all, the others adopt the stored token, nobody reuses.
func TestLockerOneRefreshAcrossEngines(t *testing.T) {
	as := newAuthServer(t)
	store := new(lockingStore)
	store.Save(context.Background(), DefaultKey, as.token())
	const engines = 4
	var es []*Engine
	for range engines {
		e, err := New(Config{OAuth2: as.config(), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	for round := 1; round <= 3; round++ {
		as.revokeAccess()
		var wg sync.WaitGroup
		for _, e := range es {
			c := e.Client(nil)
			for range 10 {
				wg.Go(func() {
					if code, _, err := get(t, c, as.apiSrv.URL); code != 200 {
						t.Errorf("round %d: %d %v", round, code, err)
					}
				})
			}
		}
		wg.Wait()
		if got := as.refreshes.Load(); got != int64(round) {
			t.Fatalf("after round %d: refreshes = %d, want %d", round, got, round)
		}
	}
	if as.reuses.Load() != 0 {
		t.Errorf("reuses = %d, want 0", as.reuses.Load())
	}
	if store.maxHeld.Load() != 1 || store.held.Load() != 0 {
		t.Errorf("lock holders: max %d, now %d; want 1 and 0", store.maxHeld.Load(), store.held.Load())
	}
}

// TestLockFailure: a store whose lock cannot be taken gives a temporary
// error and no token-endpoint call.
func TestLockFailure(t *testing.T) {
	var calls atomic.Int64
	store := &lockingStore{lockErr: errors.New("lock service down")}
	e, _ := New(Config{Store: store, RefreshAttempts: 1, Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		calls.Add(1)
		return &oauth2.Token{AccessToken: "new"}, nil
	})})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	_, err := e.Refresh(t.Context(), "", nil)
	var x *Error
	if !errors.As(err, &x) || !x.Temporary() {
		t.Errorf("err = %v, want a temporary *Error", err)
	}
	if calls.Load() != 0 {
		t.Errorf("endpoint calls = %d, want 0", calls.Load())
	}
}

// TestCompareAndSwapConflict: if a newer token is saved while a refresh
// runs (a peer whose lease outlived ours), the refresh's save is refused
// and the engine adopts the stored token instead of overwriting it.
func TestCompareAndSwapConflict(t *testing.T) {
	store := new(MemoryStore)
	var presented []string
	e, _ := New(Config{Store: store, Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		presented = append(presented, tok.RefreshToken)
		if len(presented) == 1 {
			// The peer saves its result first.
			store.Save(ctx, DefaultKey, &oauth2.Token{AccessToken: "PEER", RefreshToken: "PEER-RT"})
		}
		return &oauth2.Token{AccessToken: fmt.Sprint("MINE", len(presented)), RefreshToken: fmt.Sprint("MINE-RT", len(presented))}, nil
	})})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	tok, err := e.Refresh(t.Context(), "", nil)
	if err != nil || tok.AccessToken != "PEER" {
		t.Fatalf("Refresh = %v, %v; want the peer's token", tok, err)
	}
	if stored, _ := store.Load(t.Context(), DefaultKey); stored.RefreshToken != "PEER-RT" {
		t.Errorf("stored refresh token %q, want the peer's %q", stored.RefreshToken, "PEER-RT")
	}
	// The next refresh starts from the adopted token and is saved.
	if _, err := e.Refresh(t.Context(), "", nil); err != nil {
		t.Fatal(err)
	}
	if len(presented) != 2 || presented[1] != "PEER-RT" {
		t.Errorf("refresh tokens presented %q, want [r PEER-RT]", presented)
	}
	if stored, _ := store.Load(t.Context(), DefaultKey); stored.RefreshToken != "MINE-RT2" {
		t.Errorf("stored refresh token %q, want %q", stored.RefreshToken, "MINE-RT2")
	}
}

// TestRetryFollowsNewerToken: the retry after a refresh is rejected too,
// because another process rotated the token in between (one access token
// per grant). The request follows the newer token from the store, without
// a second refresh.
func TestRetryFollowsNewerToken(t *testing.T) {
	store := new(MemoryStore)
	var calls atomic.Int64
	e, _ := New(Config{Store: store, Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		calls.Add(1)
		return &oauth2.Token{AccessToken: "T2", RefreshToken: "R2"}, nil
	})})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "T1", RefreshToken: "R1"})
	var sent []string
	api := stubRT(func(r *http.Request) (*http.Response, error) {
		auth := r.Header.Get("Authorization")
		sent = append(sent, auth)
		if auth == "Bearer T2" {
			// A peer refreshes right now: T2 dies, T3 is stored.
			store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "T3", RefreshToken: "R3"})
		}
		if auth != "Bearer T3" {
			return response(r, 401, nil, ""), nil
		}
		return response(r, 200, nil, "ok"), nil
	})
	c := &http.Client{Transport: &Transport{Engine: e, Base: api}}
	code, _, err := get(t, c, "http://api.test/")
	if err != nil || code != 200 {
		t.Fatalf("got %d %v, want 200", code, err)
	}
	if calls.Load() != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", calls.Load())
	}
	if want := []string{"Bearer T1", "Bearer T2", "Bearer T3"}; !slices.Equal(sent, want) {
		t.Errorf("sent %q, want %q", sent, want)
	}
}
