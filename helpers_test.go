package refresh

// The helpers of this package's tests.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// authServer is a strict authorization server plus protected API for tests:
// single-use refresh tokens, and reuse of a spent one revokes the family
// (RFC 9700 §4.14.2). Its counters are exact.
type authServer struct {
	t *testing.T

	mu       sync.Mutex
	access   string          // the only valid access token ("" = none)
	refresh  string          // the only valid refresh token
	spent    map[string]bool // refresh tokens already used
	n        int             // tokens issued
	revoked  bool            // family revoked after a reuse
	expires  any             // expires_in sent with new tokens (nil: omitted)
	noRotate bool            // keep the refresh token (Google, WSO2 renewal off)
	hold     chan struct{}   // if set, token requests wait for it to close

	refreshes atomic.Int64 // token-endpoint calls
	reuses    atomic.Int64 // spent refresh tokens presented
	served401 atomic.Int64 // 401s from the API

	tokenSrv *httptest.Server
	apiSrv   *httptest.Server
}

func newAuthServer(t *testing.T) *authServer {
	t.Helper()
	as := &authServer{t: t, spent: map[string]bool{}, expires: 3600}
	as.access, as.refresh = as.issue()
	as.tokenSrv = httptest.NewServer(http.HandlerFunc(as.serveToken))
	as.apiSrv = httptest.NewServer(http.HandlerFunc(as.serveAPI))
	t.Cleanup(as.tokenSrv.Close)
	t.Cleanup(as.apiSrv.Close)
	return as
}

// issue makes a new token pair. Called with mu held or before serving.
func (as *authServer) issue() (string, string) {
	as.n++
	return fmt.Sprintf("at-%d-secretvalue", as.n), fmt.Sprintf("rt-%d-secretvalue", as.n)
}

// token returns the current token as the client would hold it.
func (as *authServer) token() *oauth2.Token {
	as.mu.Lock()
	defer as.mu.Unlock()
	return &oauth2.Token{AccessToken: as.access, RefreshToken: as.refresh, TokenType: "Bearer"}
}

// revokeAccess makes the API reject the current access token (as if it
// expired early), without touching the refresh token.
func (as *authServer) revokeAccess() {
	as.mu.Lock()
	as.access = "revoked"
	as.mu.Unlock()
}

func (as *authServer) config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     "client-id",
		ClientSecret: "client-secret-value",
		Endpoint:     oauth2.Endpoint{TokenURL: as.tokenSrv.URL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

func (as *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	as.refreshes.Add(1)
	if as.hold != nil {
		<-as.hold
	}
	if err := r.ParseForm(); err != nil {
		as.t.Errorf("token endpoint: %v", err)
	}
	if got := r.PostForm.Get("grant_type"); got != "refresh_token" {
		as.t.Errorf("grant_type = %q, want refresh_token", got)
	}
	if r.PostForm.Get("client_secret") != "client-secret-value" {
		as.t.Errorf("client_secret missing")
	}
	rt := r.PostForm.Get("refresh_token")
	as.mu.Lock()
	defer as.mu.Unlock()
	if as.spent[rt] {
		as.reuses.Add(1)
		as.revoked = true
		as.access, as.refresh = "", ""
	}
	if as.revoked || rt == "" || rt != as.refresh {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token `+rt+` is invalid"}`)
		return
	}
	if !as.noRotate {
		as.spent[rt] = true
	}
	at, nrt := as.issue()
	as.access = at
	resp := map[string]any{"access_token": at, "token_type": "bearer"}
	if !as.noRotate {
		as.refresh = nrt
		resp["refresh_token"] = nrt
	}
	if as.expires != nil {
		resp["expires_in"] = as.expires
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp)
}

func (as *authServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("Authorization")
	as.mu.Lock()
	ok := as.access != "" && got == "Bearer "+as.access
	as.mu.Unlock()
	if !ok {
		as.served401.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "token rejected")
		return
	}
	io.Copy(w, r.Body) // echo, so tests can check replayed bodies
}

// newEngine returns an engine over as with store already holding tok.
func newEngine(t *testing.T, as *authServer, c Config) *Engine {
	t.Helper()
	if c.OAuth2 == nil && c.Endpoint == nil {
		c.OAuth2 = as.config()
	}
	if c.Store == nil {
		c.Store = new(MemoryStore)
	}
	if err := c.Store.Save(context.Background(), DefaultKey, as.token()); err != nil {
		t.Fatal(err)
	}
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// get sends GET url through c and returns status and body.
func get(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// countingBody is a request body that records Close calls.
type countingBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *countingBody) Close() error { b.closes.Add(1); return nil }

// stubRT is a base RoundTripper that answers with fn, closing request
// bodies as the contract requires.
type stubRT func(*http.Request) (*http.Response, error)

func (f stubRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f(r)
	if r.Body != nil {
		r.Body.Close()
	}
	return resp, err
}

func response(r *http.Request, code int, hdr http.Header, body string) *http.Response {
	if hdr == nil {
		hdr = http.Header{}
	}
	return &http.Response{
		StatusCode: code, Status: http.StatusText(code), Header: hdr, Request: r,
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeStore wraps a MemoryStore with injectable failures and counters.
type fakeStore struct {
	MemoryStore
	saveErr atomic.Pointer[error]
	loadErr atomic.Pointer[error]
	saves   atomic.Int64
	loads   atomic.Int64
}

func (f *fakeStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	f.loads.Add(1)
	if p := f.loadErr.Load(); p != nil {
		return nil, *p
	}
	return f.MemoryStore.Load(ctx, key)
}

func (f *fakeStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	f.saves.Add(1)
	if p := f.saveErr.Load(); p != nil {
		return *p
	}
	return f.MemoryStore.Save(ctx, key, tok)
}

func (f *fakeStore) CompareAndSwap(ctx context.Context, key string, old, tok *oauth2.Token) error {
	f.saves.Add(1)
	if p := f.saveErr.Load(); p != nil {
		return *p
	}
	return f.MemoryStore.CompareAndSwap(ctx, key, old, tok)
}

func (f *fakeStore) failSaves(err error) {
	if err == nil {
		f.saveErr.Store(nil)
		return
	}
	f.saveErr.Store(&err)
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

func newServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
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
