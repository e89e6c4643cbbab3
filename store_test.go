package refresh

// The engine and its TokenStore: a token another process saved is adopted,
// a rotated token is saved before anyone uses it and survives a failing
// store, and the Locker and CompareAndSwap capabilities make "exactly one
// refresh" hold across processes.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// TestAdoptFromStore: a process whose token is stale finds a newer token
// in the shared store (another process refreshed) and adopts it without
// calling the endpoint.
func TestAdoptFromStore(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	store := new(MemoryStore)
	store.Save(t.Context(), DefaultKey, srv.Token())
	var clients []*http.Client
	for range 2 {
		e, err := New(Config{OAuth2: srv.Config(), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, e.Client(nil))
	}
	for _, c := range clients { // both load the first token
		if code, _, err := get(t, c, srv.URL+"/v1/me"); code != 200 {
			t.Fatalf("warm-up: %d %v", code, err)
		}
	}
	srv.RevokeAccessTokens()
	for i, c := range clients {
		if code, _, err := get(t, c, srv.URL+"/v1/me"); code != 200 {
			t.Fatalf("engine %d: %d %v", i+1, code, err)
		}
	}
	if st := srv.Stats(); st.TokenRequests != 1 || st.Reuses != 0 {
		t.Errorf("token requests %d, reuses %d; want 1 and 0", st.TokenRequests, st.Reuses)
	}
}

// TestSaveFailure: when Save fails the new token is used from memory, the
// failure is reported, the old refresh token is never sent again, and the
// token is saved once the store works again.
func TestSaveFailure(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(fakeStore)
	var hookErrs atomic.Int64
	logs := new(syncBuffer)
	e := newEngine(t, as, Config{
		Store:  store,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Hooks:  Hooks{SaveFailed: func(key string, err error) { hookErrs.Add(1) }},
	})
	c := e.Client(nil)
	get(t, c, as.URL)
	old, _ := store.MemoryStore.Load(context.Background(), DefaultKey)

	store.failSaves(errors.New("disk full"))
	as.RevokeAccessTokens()
	if code, _, err := get(t, c, as.URL); code != 200 {
		t.Fatalf("request after refresh with failing store: %d %v", code, err)
	}
	FlushEvents(e) // hooks run on the event goroutine
	if hookErrs.Load() == 0 {
		t.Errorf("SaveFailed hook not called")
	}
	if !strings.Contains(logs.String(), "saving the new token failed") {
		t.Errorf("save failure not logged: %s", logs)
	}
	if s, _ := store.MemoryStore.Load(context.Background(), DefaultKey); s.RefreshToken != old.RefreshToken {
		t.Fatalf("store changed although Save failed")
	}

	// A second rotation while the store is still down must use the new
	// refresh token from memory, not the stale one in the store.
	as.RevokeAccessTokens()
	if code, _, err := get(t, c, as.URL); code != 200 {
		t.Fatalf("second refresh with failing store: %d %v", code, err)
	}
	if got := as.Stats().Reuses; got != 0 {
		t.Fatalf("reuses = %d, want 0: an old refresh token was sent again", got)
	}

	// Once the store works, the next refresh saves the pending token
	// before anything else, then its own.
	store.failSaves(nil)
	as.RevokeAccessTokens()
	if code, _, err := get(t, c, as.URL); code != 200 {
		t.Fatalf("refresh after store recovered: %d %v", code, err)
	}
	stored, _ := store.MemoryStore.Load(context.Background(), DefaultKey)
	if got, want := stored.RefreshToken, as.token().RefreshToken; got != want {
		t.Errorf("stored refresh token %q, want the newest %q", got, want)
	}
	if got := as.Stats().TokenRequests; got != 3 {
		t.Errorf("token-endpoint calls = %d, want 3", got)
	}
}

// TestSetTokenSaveFailure: SetToken reports a store failure and changes
// nothing.
func TestSetTokenSaveFailure(t *testing.T) {
	store := new(fakeStore)
	e, _ := New(Config{Endpoint: EndpointFunc(nil), Store: store})
	e.SetToken(t.Context(), "k", &oauth2.Token{AccessToken: "one"})
	store.failSaves(errors.New("down"))
	if err := e.SetToken(t.Context(), "k", &oauth2.Token{AccessToken: "two"}); err == nil {
		t.Fatal("SetToken: err = nil, want the store's error")
	}
	if tok, _ := e.Token(t.Context(), "k"); tok.AccessToken != "one" {
		t.Errorf("token = %q, want %q", tok.AccessToken, "one")
	}
}

// publishCheckStore records, at each Save, whether the engine already
// serves the token being saved.
type publishCheckStore struct {
	MemoryStore
	e     *Engine
	early atomic.Int64 // saves of a token that was already in use
	saves atomic.Int64
}

func (s *publishCheckStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	s.check(key, tok)
	return s.MemoryStore.Save(ctx, key, tok)
}

func (s *publishCheckStore) CompareAndSwap(ctx context.Context, key string, old, tok *oauth2.Token) error {
	s.check(key, tok)
	return s.MemoryStore.CompareAndSwap(ctx, key, old, tok)
}

func (s *publishCheckStore) check(key string, tok *oauth2.Token) {
	s.saves.Add(1)
	if s.e != nil {
		if cur := servedToken(s.e, key); cur != nil && cur.AccessToken == tok.AccessToken {
			s.early.Add(1)
		}
	}
}

// TestPersistBeforePublish: a refreshed token is saved before any caller
// can use it.
func TestPersistBeforePublish(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(publishCheckStore)
	e := newEngine(t, as, Config{Store: store})
	store.e = e
	store.saves.Store(0) // the first token, saved by newEngine
	c := e.Client(nil)
	for range 3 {
		as.RevokeAccessTokens()
		if code, _, err := get(t, c, as.URL); code != 200 {
			t.Fatalf("%d %v", code, err)
		}
	}
	if store.saves.Load() != 3 {
		t.Errorf("saves = %d, want 3", store.saves.Load())
	}
	if n := store.early.Load(); n != 0 {
		t.Errorf("%d tokens were in use before they were saved", n)
	}
}

// TestLockerOneRefreshAcrossEngines: several engines ("processes") over
// one locking store and one strict server: each rejection is refreshed
// once in all, the others adopt the stored token, nobody reuses.
func TestLockerOneRefreshAcrossEngines(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(lockingStore)
	store.Save(context.Background(), DefaultKey, as.logIn())
	const engines = 4
	var es []*Engine
	for range engines {
		e, err := New(Config{OAuth2: as.Config(), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	for round := 1; round <= 3; round++ {
		as.RevokeAccessTokens()
		var wg sync.WaitGroup
		for _, e := range es {
			c := e.Client(nil)
			for range 10 {
				wg.Go(func() {
					if code, _, err := get(t, c, as.URL); code != 200 {
						t.Errorf("round %d: %d %v", round, code, err)
					}
				})
			}
		}
		wg.Wait()
		if got := as.Stats().TokenRequests; got != round {
			t.Fatalf("after round %d: refreshes = %d, want %d", round, got, round)
		}
	}
	if n := as.Stats().Reuses; n != 0 {
		t.Errorf("reuses = %d, want 0", n)
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
