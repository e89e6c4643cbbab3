package refresh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// TestSmoke pins the basic cycle against refreshtest's strict server: a
// request with the stored token, a rejected token refreshed once, the
// rotated token persisted, no reuse.
func TestSmoke(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	store := new(MemoryStore)
	e, err := New(Config{OAuth2: srv.Config(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	login := srv.Token()
	if err := e.SetToken(t.Context(), "", login); err != nil {
		t.Fatal(err)
	}
	c := e.Client(nil)
	if code, body, err := get(t, c, srv.URL+"/v1/me"); err != nil || code != 200 {
		t.Fatalf("got %d %q %v, want 200", code, body, err)
	}
	srv.RevokeAccessTokens()
	if code, body, err := get(t, c, srv.URL+"/v1/me"); err != nil || code != 200 {
		t.Fatalf("after revoke: got %d %q %v, want 200", code, body, err)
	}
	st := srv.Stats()
	if st.Refreshes != 1 || st.Reuses != 0 || st.Served401 != 1 {
		t.Errorf("refreshes %d, reuses %d, 401s %d; want 1, 0, 1", st.Refreshes, st.Reuses, st.Served401)
	}
	stored, _ := store.Load(t.Context(), DefaultKey)
	if stored.RefreshToken == login.RefreshToken {
		t.Errorf("stored refresh token was not rotated")
	}
}

// apiStub answers like as.serveAPI, in memory, with a hook that runs
// before the token is checked. It lets a test hold requests at a barrier.
func apiStub(as *authServer, before func(r *http.Request)) stubRT {
	return func(r *http.Request) (*http.Response, error) {
		if before != nil {
			before(r)
		}
		as.mu.Lock()
		ok := as.access != "" && r.Header.Get("Authorization") == "Bearer "+as.access
		as.mu.Unlock()
		if !ok {
			as.served401.Add(1)
			return response(r, 401, http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}, "no"), nil
		}
		return response(r, 200, nil, "ok"), nil
	}
}

// TestStorm: 1,000 goroutines that all get a 401 for the same token cause
// exactly one token-endpoint call, and every request succeeds.
func TestStorm(t *testing.T) {
	const n = 1000
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()

	// Every request with the revoked token waits until all n have been
	// sent, so all n see their 401 at the same moment.
	var arrived sync.WaitGroup
	arrived.Add(n)
	var once sync.Map
	api := apiStub(as, func(r *http.Request) {
		id := r.Header.Get("X-Id")
		if _, seen := once.LoadOrStore(id, true); !seen {
			arrived.Done()
			arrived.Wait()
		}
	})
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
	if got := as.refreshes.Load(); got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
	if got := failed.Load(); got != 0 {
		t.Errorf("failed requests = %d, want 0", got)
	}
	if got := as.served401.Load(); got != n {
		t.Errorf("401s served = %d, want %d (each request once, no second 401)", got, n)
	}
}

// TestLate401 pins the generation check: a 401 that arrives after the
// token was already rotated is retried with the current token, with no
// second refresh.
func TestLate401(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()

	slowSent := make(chan struct{})
	release := make(chan struct{})
	var first sync.Once
	api := apiStub(as, func(r *http.Request) {
		if r.Header.Get("X-Slow") != "" {
			first.Do(func() { // the slow request's first attempt only
				close(slowSent)
				<-release // answer only after the fast request refreshed
			})
		}
	})
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
	if got := as.refreshes.Load(); got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
	if got := as.reuses.Load(); got != 0 {
		t.Errorf("reuses = %d, want 0", got)
	}
}

// TestAdoptFromStore: a process whose token is stale finds a newer token
// in the shared store (another process refreshed) and adopts it without
// calling the endpoint.
func TestAdoptFromStore(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
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
	as := newAuthServer(t)
	store := new(fakeStore)
	var hookErrs atomic.Int64
	logs := new(syncBuffer)
	e := newEngine(t, as, Config{
		Store:  store,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Hooks:  Hooks{SaveFailed: func(key string, err error) { hookErrs.Add(1) }},
	})
	c := e.Client(nil)
	get(t, c, as.apiSrv.URL)
	old, _ := store.MemoryStore.Load(context.Background(), DefaultKey)

	store.failSaves(errors.New("disk full"))
	as.revokeAccess()
	if code, _, err := get(t, c, as.apiSrv.URL); code != 200 {
		t.Fatalf("request after refresh with failing store: %d %v", code, err)
	}
	e.flushEvents(nil)
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
	as.revokeAccess()
	if code, _, err := get(t, c, as.apiSrv.URL); code != 200 {
		t.Fatalf("second refresh with failing store: %d %v", code, err)
	}
	if got := as.reuses.Load(); got != 0 {
		t.Fatalf("reuses = %d, want 0: an old refresh token was sent again", got)
	}

	// Once the store works, the next refresh saves the pending token
	// before anything else, then its own.
	store.failSaves(nil)
	as.revokeAccess()
	if code, _, err := get(t, c, as.apiSrv.URL); code != 200 {
		t.Fatalf("refresh after store recovered: %d %v", code, err)
	}
	stored, _ := store.MemoryStore.Load(context.Background(), DefaultKey)
	if got, want := stored.RefreshToken, as.token().RefreshToken; got != want {
		t.Errorf("stored refresh token %q, want the newest %q", got, want)
	}
	if got := as.refreshes.Load(); got != 3 {
		t.Errorf("token-endpoint calls = %d, want 3", got)
	}
}

// fakeAS is an in-memory token endpoint and API for synctest bubbles,
// where real network I/O would stop the fake clock.
type fakeAS struct {
	mu       sync.Mutex
	life     time.Duration // access-token lifetime
	access   string
	expiry   time.Time
	refresh  string
	n        int
	calls    int  // token-endpoint calls
	rejected int  // API 401s
	reject   bool // answer invalid_grant
	down     bool // answer 503
}

func (f *fakeAS) endpoint(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.down {
		return nil, &Error{StatusCode: 503}
	}
	if f.reject || tok.RefreshToken != f.refresh {
		return nil, &Error{StatusCode: 400, Code: "invalid_grant"}
	}
	f.n++
	f.access, f.refresh = fmt.Sprintf("at%d", f.n), fmt.Sprintf("rt%d", f.n)
	f.expiry = time.Now().Add(f.life)
	return &oauth2.Token{AccessToken: f.access, RefreshToken: f.refresh, Expiry: f.expiry, ExpiresIn: int64(f.life / time.Second)}, nil
}

func (f *fakeAS) first() *oauth2.Token {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.access, f.refresh, f.expiry = "at0", "rt0", time.Now().Add(f.life)
	return &oauth2.Token{AccessToken: f.access, RefreshToken: f.refresh, Expiry: f.expiry, ExpiresIn: int64(f.life / time.Second)}
}

func (f *fakeAS) api(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+f.access || !time.Now().Before(f.expiry) {
		f.rejected++
		return response(r, 401, http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}, ""), nil
	}
	return response(r, 200, nil, "ok"), nil
}

// TestShortTokenSteadyTraffic: a 3 s token under steady traffic is
// refreshed at half its lifetime (the 60 s skew clamped), not on every
// request, and never lets a request hit an expired token.
func TestShortTokenSteadyTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAS{life: 3 * time.Second}
		e, err := New(Config{Endpoint: EndpointFunc(f.endpoint)})
		if err != nil {
			t.Fatal(err)
		}
		e.SetToken(t.Context(), "", f.first())
		c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(f.api)}}
		start := time.Now()
		requests := 0
		for time.Since(start) < 30*time.Second {
			if code, _, err := get(t, c, "http://api.test/"); code != 200 {
				t.Fatalf("at %v: %d %v", time.Since(start), code, err)
			}
			requests++
			time.Sleep(100 * time.Millisecond)
		}
		// Refreshes at 1.5 s, 3 s, ... 28.5 s.
		if f.calls != 19 {
			t.Errorf("refreshes = %d over 30 s with a 3 s token, want 19", f.calls)
		}
		if f.rejected != 0 {
			t.Errorf("401s = %d, want 0", f.rejected)
		}
		if requests != 300 {
			t.Errorf("requests = %d, want 300", requests)
		}
	})
}

// TestSkewClamp pins when a token counts as due for refresh.
func TestSkewClamp(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		skew    time.Duration
		tok     oauth2.Token
		wantAt  time.Duration // refreshAt - expiry; 0 with zero expiry: never
		noClock bool
	}{
		{name: "default skew, 1h token", tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: -60 * time.Second},
		{name: "3s token: half its life", tok: oauth2.Token{Expiry: now.Add(3 * time.Second), ExpiresIn: 3}, wantAt: -1500 * time.Millisecond},
		{name: "custom skew", skew: 10 * time.Second, tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: -10 * time.Second},
		{name: "negative skew: at expiry", skew: -1, tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: 0},
		{name: "zero expiry: never", tok: oauth2.Token{}, noClock: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := New(Config{Endpoint: EndpointFunc(nil), ExpirySkew: tc.skew})
			tc.tok.AccessToken = "a"
			s := e.newSnapshot("k", &tc.tok)
			if tc.noClock {
				if !s.refreshAt.IsZero() {
					t.Errorf("refreshAt = %v, want zero", s.refreshAt)
				}
				return
			}
			if got := s.refreshAt.Sub(tc.tok.Expiry); got != tc.wantAt {
				t.Errorf("refreshAt - expiry = %v, want %v", got, tc.wantAt)
			}
		})
	}
}

// TestReauthLatch: a rejected refresh token gives ErrReauthRequired, and
// then no token-endpoint call at all, however many requests follow, until
// a new token is set.
func TestReauthLatch(t *testing.T) {
	for _, status := range []int{400, 500} { // gw2.me answers invalid_grant with 500
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var calls atomic.Int64
			tokenSrv := newJSONServer(t, status, `{"error":"invalid_grant","error_description":"expired"}`, &calls)
			reauth := make(chan string, 10)
			e, err := New(Config{
				OAuth2: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{TokenURL: tokenSrv, AuthStyle: oauth2.AuthStyleInHeader}},
				Hooks:  Hooks{ReauthRequired: func(key string, err error) { reauth <- key }},
			})
			if err != nil {
				t.Fatal(err)
			}
			e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "dead", RefreshToken: "rt"})
			api := stubRT(func(r *http.Request) (*http.Response, error) {
				return response(r, 401, nil, ""), nil
			})
			c := &http.Client{Transport: &Transport{Engine: e, Base: api}}
			_, err = c.Get("http://api.test/")
			if !errors.Is(err, ErrReauthRequired) {
				t.Fatalf("first request: err = %v, want ErrReauthRequired", err)
			}
			var x *Error
			if !errors.As(err, &x) || x.Code != "invalid_grant" || x.StatusCode != status || x.Temporary() {
				t.Errorf("error details = %+v, want invalid_grant, status %d, not temporary", x, status)
			}
			if calls.Load() != 1 {
				t.Fatalf("token-endpoint calls = %d, want 1", calls.Load())
			}
			for range 100 {
				if _, err := c.Get("http://api.test/"); !errors.Is(err, ErrReauthRequired) {
					t.Fatalf("latched request: err = %v, want ErrReauthRequired", err)
				}
			}
			if got := calls.Load(); got != 1 {
				t.Errorf("token-endpoint calls after 100 latched requests = %d, want 1", got)
			}
			if got := <-reauth; got != DefaultKey {
				t.Errorf("ReauthRequired hook key %q, want %q", got, DefaultKey)
			}
			if len(reauth) != 0 {
				t.Errorf("ReauthRequired hook called %d more times, want once", len(reauth))
			}

			// A new login lifts the latch.
			ok := stubRT(func(r *http.Request) (*http.Response, error) { return response(r, 200, nil, ""), nil })
			c.Transport.(*Transport).Base = ok
			if err := e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "new", RefreshToken: "rt2"}); err != nil {
				t.Fatal(err)
			}
			if code, _, err := get(t, c, "http://api.test/"); code != 200 {
				t.Errorf("after SetToken: %d %v", code, err)
			}
		})
	}
}

// TestReauthRecheck: a latched key notices a new login that another
// process put in the shared store, at most every few seconds, still
// without calling the endpoint.
func TestReauthRecheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAS{life: time.Hour, reject: true}
		store := new(MemoryStore)
		e, _ := New(Config{Endpoint: EndpointFunc(f.endpoint), Store: store})
		e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "x", RefreshToken: "old"})
		if _, err := e.Refresh(t.Context(), "", &oauth2.Token{AccessToken: "x"}); !errors.Is(err, ErrReauthRequired) {
			t.Fatalf("err = %v, want ErrReauthRequired", err)
		}
		store.Save(t.Context(), DefaultKey, &oauth2.Token{AccessToken: "fresh", RefreshToken: "rt"})
		if _, err := e.Token(t.Context(), ""); !errors.Is(err, ErrReauthRequired) {
			t.Fatalf("right after latching: err = %v, want ErrReauthRequired", err)
		}
		time.Sleep(reauthRecheck)
		tok, err := e.Token(t.Context(), "")
		if err != nil || tok.AccessToken != "fresh" {
			t.Fatalf("after recheck: %v, %v; want the stored token", tok, err)
		}
		if f.calls != 1 {
			t.Errorf("token-endpoint calls = %d, want 1", f.calls)
		}
	})
}

// TestNoStoredToken: a key with no token fails with ErrReauthRequired
// without calling the endpoint.
func TestNoStoredToken(t *testing.T) {
	var calls atomic.Int64
	e, _ := New(Config{Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		calls.Add(1)
		return nil, errors.New("unreachable")
	})})
	_, err := e.Token(t.Context(), "nobody")
	if !errors.Is(err, ErrReauthRequired) {
		t.Errorf("err = %v, want ErrReauthRequired", err)
	}
	if calls.Load() != 0 {
		t.Errorf("endpoint calls = %d, want 0", calls.Load())
	}
}

func newJSONServer(t *testing.T, status int, body string, calls *atomic.Int64) string {
	t.Helper()
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	return srv + "/token"
}

// TestTemporaryFailure: a 503 without an OAuth code is temporary and not
// latched: after the cooldown the next request tries again.
func TestTemporaryFailure(t *testing.T) {
	var calls atomic.Int64
	tokenURL := newJSONServer(t, 503, `<html>down</html>`, &calls)
	e, _ := New(Config{RefreshAttempts: 1, OAuth2: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}}})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(-time.Minute)})
	for i := 1; i <= 2; i++ {
		_, err := e.Token(t.Context(), "")
		var x *Error
		if !errors.As(err, &x) || !x.Temporary() || x.StatusCode != 503 || errors.Is(err, ErrReauthRequired) {
			t.Fatalf("attempt %d: err = %v, want temporary 503", i, err)
		}
		if got := calls.Load(); got != int64(i) {
			t.Errorf("endpoint calls = %d, want %d", got, i)
		}
		if x.BodySnippet != "down" {
			t.Errorf("BodySnippet = %q, want %q", x.BodySnippet, "down")
		}
		time.Sleep(cooldown(x)) // let the cooldown pass
	}
}

// TestCancelledCallerDetachedRefresh: the caller that starts a refresh and
// then gives up gets ctx.Err() at once; the refresh completes, is saved,
// and serves the next caller.
func TestCancelledCallerDetachedRefresh(t *testing.T) {
	as := newAuthServer(t)
	as.hold = make(chan struct{})
	e := newEngine(t, as, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := e.Refresh(ctx, "", as.token())
		done <- err
	}()
	waitFor(t, func() bool { return as.refreshes.Load() == 1 })
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
	close(as.hold)
	// The refresh goes on without its caller and publishes the new token.
	waitFor(t, func() bool { return e.entry(DefaultKey).cur.Load().tok.AccessToken != first })
	tok, err := e.Token(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if want := as.token(); tok.AccessToken != want.AccessToken {
		t.Errorf("token after refresh %q, want %q", tok.AccessToken, want.AccessToken)
	}
	stored, _ := e.store.Load(context.Background(), DefaultKey)
	if stored.RefreshToken != as.token().RefreshToken {
		t.Errorf("refresh was not persisted")
	}
	if got := as.refreshes.Load(); got != 1 {
		t.Errorf("token-endpoint calls = %d, want 1", got)
	}
}

// TestRefreshTimeout: a refresh ends after RefreshTimeout even though no
// caller gives up, and the error is temporary.
func TestRefreshTimeout(t *testing.T) {
	as := newAuthServer(t)
	as.hold = make(chan struct{})
	defer close(as.hold)
	e := newEngine(t, as, Config{RefreshTimeout: 50 * time.Millisecond})
	_, err := e.Refresh(context.Background(), "", as.token())
	var x *Error
	if !errors.As(err, &x) || !x.Temporary() {
		t.Errorf("err = %v, want a temporary *Error", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestNoRotationKeepsRefreshToken: a response without refresh_token
// (Google, WSO2 with renewal off) keeps the old refresh token.
func TestNoRotationKeepsRefreshToken(t *testing.T) {
	as := newAuthServer(t)
	as.noRotate = true
	e := newEngine(t, as, Config{})
	first := as.token().RefreshToken
	for range 2 {
		if _, err := e.Refresh(t.Context(), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	stored, _ := e.store.Load(t.Context(), DefaultKey)
	if stored.RefreshToken != first {
		t.Errorf("stored refresh token %q, want the original %q", stored.RefreshToken, first)
	}
	if as.refreshes.Load() != 2 {
		t.Errorf("refreshes = %d, want 2", as.refreshes.Load())
	}
}

// TestResponseVariants: token_type and expires_in as real servers send
// them.
func TestResponseVariants(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extra      string
		wantAuth   string
		wantExpiry bool
	}{
		{"bearer lower", `"token_type":"bearer","expires_in":3600`, "Bearer AT", true},
		{"BEARER upper", `"token_type":"BEARER","expires_in":3600`, "Bearer AT", true},
		{"type missing", `"expires_in":3600`, "Bearer AT", true},
		{"expires_in string", `"token_type":"Bearer","expires_in":"3600"`, "Bearer AT", true},
		{"expires_in null", `"token_type":"Bearer","expires_in":null`, "Bearer AT", false},
		{"expires_in missing", `"token_type":"Bearer"`, "Bearer AT", false},
		{"expires_in zero", `"token_type":"Bearer","expires_in":0`, "Bearer AT", false},
		{"expires_in negative", `"token_type":"Bearer","expires_in":-30`, "Bearer AT", false},
		{"expires_in huge", `"token_type":"Bearer","expires_in":99999999999`, "Bearer AT", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			tokenURL := newJSONServer(t, 200, `{"access_token":"AT","refresh_token":"RT2",`+tc.extra+`}`, &calls)
			e, _ := New(Config{OAuth2: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}}})
			e.SetToken(t.Context(), "", &oauth2.Token{RefreshToken: "RT"})
			var sent []string
			c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(func(r *http.Request) (*http.Response, error) {
				sent = append(sent, r.Header.Get("Authorization"))
				return response(r, 200, nil, ""), nil
			})}}
			for range 3 {
				if _, _, err := get(t, c, "http://api.test/"); err != nil {
					t.Fatal(err)
				}
			}
			if calls.Load() != 1 {
				t.Errorf("refreshes = %d, want 1 (a bad expiry must not cause a refresh per request)", calls.Load())
			}
			for _, got := range sent {
				if got != tc.wantAuth {
					t.Errorf("Authorization %q, want %q", got, tc.wantAuth)
				}
			}
			tok, _ := e.Token(t.Context(), "")
			if got := !tok.Expiry.IsZero(); got != tc.wantExpiry {
				t.Errorf("has expiry = %v, want %v (expiry %v)", got, tc.wantExpiry, tok.Expiry)
			}
		})
	}
}

// TestNoSecretsInOutput drives every failure path with secrets that are
// easy to find, and scans every error string and log line for them.
func TestNoSecretsInOutput(t *testing.T) {
	const (
		access  = "AT-SECRET-4f1a"
		refresh = "RT-SECRET-9c2b"
		secret  = "CLIENT-SECRET-77ee"
	)
	secrets := []string{access, refresh, secret, "NEW-AT-SECRET", "NEW-RT-SECRET"}
	logs := new(syncBuffer)
	var errs []string
	var mu sync.Mutex
	record := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		}
	}
	hooks := Hooks{RefreshFailed: func(k string, err error) { record(err) }, SaveFailed: func(k string, err error) { record(err) }}

	bodies := []struct {
		status int
		body   string
	}{
		{400, `{"error":"invalid_grant","error_description":"token ` + refresh + ` revoked"}`},
		{500, `<html>` + refresh + ` ` + secret + `</html>`},
		{400, `{"error":"invalid_client","error_description":"bad secret ` + secret + `"}`},
		{200, `{"access_token":"NEW-AT-SECRET` + "\r\n" + `","refresh_token":"NEW-RT-SECRET"}`},
		{200, `{"access_token":"NEW-AT-SECRET","refresh_token":"NEW-RT-SECRET","expires_in":"x"}`},
		{302, `<a href="https://evil.test/?` + refresh + `">`},
	}
	for _, b := range bodies {
		var calls atomic.Int64
		tokenURL := newJSONServer(t, b.status, b.body, &calls)
		store := new(fakeStore)
		store.failSaves(errors.New("store down"))
		e, _ := New(Config{
			RefreshAttempts: 1,
			OAuth2:          &oauth2.Config{ClientID: "id", ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}},
			Store:           store, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Hooks: hooks,
		})
		store.MemoryStore.Save(t.Context(), DefaultKey, &oauth2.Token{AccessToken: access, RefreshToken: refresh})
		c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(func(r *http.Request) (*http.Response, error) {
			return response(r, 401, nil, ""), nil
		})}}
		_, err := c.Get("http://api.test/")
		record(err)
		_, err = e.Token(t.Context(), "")
		record(err)
		e.flushEvents(nil) // hooks run on the event goroutine
	}
	// A store that fails to load, and an endpoint that panics.
	store := new(fakeStore)
	lerr := errors.New("connection refused")
	store.loadErr.Store(&lerr)
	e, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { panic(refresh) }), Store: store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err := e.Token(t.Context(), "")
	record(err)
	e2, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { panic(refresh) }), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	e2.SetToken(t.Context(), "", &oauth2.Token{RefreshToken: refresh})
	_, err = e2.Token(t.Context(), "")
	record(err)

	if len(errs) < 10 {
		t.Fatalf("only %d errors collected; the scan would prove little", len(errs))
	}
	all := strings.Join(errs, "\n") + "\n" + logs.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("secret %q appears in output:\n%s", s, all)
		}
	}
	for _, msg := range errs {
		if !strings.HasPrefix(msg, "refresh:") && !strings.Contains(msg, "refresh:") {
			t.Errorf("error %q does not come from this package", msg)
		}
	}
	if !strings.Contains(all, Fingerprint(refresh)) {
		t.Errorf("the echoed refresh token should appear as its fingerprint %q", Fingerprint(refresh))
	}
}

// TestTokenSource: the oauth2.TokenSource adapter serves the engine's
// token and refreshes with no captured context.
func TestTokenSource(t *testing.T) {
	as := newAuthServer(t)
	as.expires = 3600
	e := newEngine(t, as, Config{})
	ts := e.TokenSource("")
	tok, err := ts.Token()
	if err != nil || tok.AccessToken != as.token().AccessToken {
		t.Fatalf("Token() = %v, %v", tok, err)
	}
	// Expire the token in memory; the source must refresh it.
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Second)})
	tok2, err := ts.Token()
	if err != nil || tok2.AccessToken == tok.AccessToken || tok2.AccessToken != as.token().AccessToken {
		t.Fatalf("after expiry Token() = %v, %v; want a refreshed token", tok2, err)
	}
	if as.refreshes.Load() != 1 {
		t.Errorf("refreshes = %d, want 1", as.refreshes.Load())
	}
}

// TestEngineRefreshGeneration: Refresh for a token that is no longer the
// current one returns the current one without calling the endpoint.
func TestEngineRefreshGeneration(t *testing.T) {
	as := newAuthServer(t)
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
	if as.refreshes.Load() != 1 {
		t.Errorf("refreshes = %d, want 1", as.refreshes.Load())
	}
}

// TestConfigValidation: auto-detected client authentication is refused,
// and so is a token-endpoint client that goes through this package.
func TestConfigValidation(t *testing.T) {
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "https://as.test/token"}}
	if _, err := New(Config{OAuth2: conf}); err == nil || !strings.Contains(err.Error(), "AuthStyle") {
		t.Errorf("AuthStyleAutoDetect: err = %v, want a refusal", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("no OAuth2 and no Endpoint: err = nil")
	}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := New(Config{OAuth2: conf, HTTPClient: &http.Client{Transport: &Transport{}}}); err == nil {
		t.Errorf("HTTPClient over refresh.Transport: err = nil")
	}
	if _, err := New(Config{OAuth2: conf}); err != nil {
		t.Errorf("valid config: %v", err)
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

// TestRefreshedHook: Refreshed fires once per refresh with the key.
func TestRefreshedHook(t *testing.T) {
	as := newAuthServer(t)
	var keys []string
	var mu sync.Mutex
	e := newEngine(t, as, Config{Hooks: Hooks{Refreshed: func(k string) { mu.Lock(); keys = append(keys, k); mu.Unlock() }}})
	e.Refresh(t.Context(), "", nil)
	e.flushEvents(nil) // hooks run on the event goroutine
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 1 || keys[0] != DefaultKey {
		t.Errorf("Refreshed calls %q, want [%q]", keys, DefaultKey)
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Key: "u1", StatusCode: 400, Code: "invalid_grant", Description: "expired", Err: ErrReauthRequired},
			`refresh: key "u1": token endpoint answered HTTP 400 invalid_grant: expired (re-authentication required)`},
		{&Error{Key: "u1", Err: errors.New("store load: boom")}, `refresh: key "u1": store load: boom`},
		{&Error{Key: "u1"}, `refresh: key "u1": refresh failed`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := sanitizeDescription("a\r\nb "+strings.Repeat("é", 200), "zz"); strings.ContainsAny(got, "\r\n") || len(got) > maxDescription+len("…") {
		t.Errorf("sanitizeDescription kept control characters or length: %q", got)
	}
}

func newServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestHookMayCallEngine: a hook that asks the engine for the same key does
// not deadlock on the flight that runs it.
func TestHookMayCallEngine(t *testing.T) {
	f := &fakeAS{life: time.Hour, reject: true}
	var e *Engine
	done := make(chan error, 1)
	e, _ = New(Config{Endpoint: EndpointFunc(f.endpoint), Hooks: Hooks{ReauthRequired: func(key string, err error) {
		_, terr := e.Token(context.Background(), key)
		done <- terr
	}}})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	if _, err := e.Refresh(t.Context(), "", nil); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("err = %v, want ErrReauthRequired", err)
	}
	if err := <-done; !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Token from hook: err = %v, want ErrReauthRequired", err)
	}
}

// TestEarlyRefreshFailure: when a refresh due within the skew fails, the
// still-valid token keeps serving requests, the endpoint is tried again
// every few seconds rather than on every request, and requests fail only
// once the token has really expired.
func TestEarlyRefreshFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeAS{life: time.Hour}
		// One attempt per refresh, so that the count below is about
		// refreshes; TestTemporaryRetries covers the attempts.
		e, _ := New(Config{Endpoint: EndpointFunc(f.endpoint), RefreshAttempts: 1})
		e.SetToken(t.Context(), "", f.first())
		expiry := time.Now().Add(time.Hour)
		f.down = true
		c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(f.api)}}
		time.Sleep(58 * time.Minute)
		var okBefore, failedAfter, requests int
		for time.Now().Before(expiry.Add(10 * time.Second)) {
			code, _, err := get(t, c, "http://api.test/")
			requests++
			switch {
			case time.Now().Before(expiry) && code == 200:
				okBefore++
			case !time.Now().Before(expiry) && err != nil:
				failedAfter++
			default:
				t.Errorf("at %v before expiry: status %d, err %v", time.Until(expiry), code, err)
			}
			time.Sleep(time.Second)
		}
		if okBefore != 120 || failedAfter != 10 {
			t.Errorf("ok before expiry = %d, failed after = %d; want 120 and 10", okBefore, failedAfter)
		}
		// About one attempt per 5 s in the last minute, a few more as the
		// expiry nears, then one per request once expired: far fewer than
		// one per request.
		if f.calls < 12 || f.calls > 25 {
			t.Errorf("endpoint calls = %d for %d requests, want 12..25", f.calls, requests)
		}
	})
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
		if cur := s.e.entry(key).cur.Load(); cur != nil && cur.tok != nil && cur.tok.AccessToken == tok.AccessToken {
			s.early.Add(1)
		}
	}
}

// TestPersistBeforePublish: a refreshed token is saved before any caller
// can use it.
func TestPersistBeforePublish(t *testing.T) {
	as := newAuthServer(t)
	store := new(publishCheckStore)
	e := newEngine(t, as, Config{Store: store})
	store.e = e
	store.saves.Store(0) // the first token, saved by newEngine
	c := e.Client(nil)
	for range 3 {
		as.revokeAccess()
		if code, _, err := get(t, c, as.apiSrv.URL); code != 200 {
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
