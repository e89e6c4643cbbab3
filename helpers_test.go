package refresh

// The helpers of this package's tests: the authorization server and its
// protected API (refreshtest.Server, with the one API stub of the package
// for Transport.Base), the scripted token endpoint for answers no real
// server gives, waitFor, and small stubs of stores, bodies and loggers.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// testServer is the authorization server and protected API of this
// package's tests: a refreshtest.Server, closed with the test, that fails
// the test whenever it refuses a token request for a reason the test did not
// expect (a malformed request: the library's wire code is wrong), and that
// remembers the events of its token endpoint.
type testServer struct {
	*refreshtest.Server
	opts  refreshtest.Options // as given to newServer
	t     testing.TB
	login *oauth2.Token // the login of logIn, whose grant token follows

	mu     sync.Mutex
	events []refreshtest.TokenEvent
	okCode map[string]bool // OAuth codes the test expects refusals with
}

// newServer starts a refreshtest.Server with o, closed when the test ends.
// A refusal other than invalid_grant (a spent, revoked or unknown refresh
// token, which tests provoke) fails the test; see expectRefusals.
func newServer(t testing.TB, o refreshtest.Options) *testServer {
	t.Helper()
	s := &testServer{opts: o, t: t, okCode: map[string]bool{"invalid_grant": true}}
	next := o.OnTokenRequest
	o.OnTokenRequest = func(ev refreshtest.TokenEvent) {
		s.observe(ev)
		if next != nil {
			next(ev)
		}
	}
	s.Server = refreshtest.NewServer(o)
	t.Cleanup(s.Close)
	return s
}

func (s *testServer) observe(ev refreshtest.TokenEvent) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	ok := s.okCode[ev.Code]
	s.mu.Unlock()
	if (ev.Kind == refreshtest.TokenRefused || ev.Kind == refreshtest.TokenReuse) && !ok {
		s.t.Errorf("the token endpoint refused a request with %s: %s", ev.Code, ev.Description)
	}
}

// expectRefusals makes refusals with exactly these OAuth codes expected
// from now on; none means every refusal fails the test.
func (s *testServer) expectRefusals(codes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.okCode = map[string]bool{}
	for _, c := range codes {
		s.okCode[c] = true
	}
}

// tokenEvents returns the events of the token endpoint so far.
func (s *testServer) tokenEvents() []refreshtest.TokenEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]refreshtest.TokenEvent(nil), s.events...)
}

// logIn starts the grant that token follows and returns its first token.
func (s *testServer) logIn() *oauth2.Token {
	s.login = s.Token()
	return s.login
}

// token returns the current token of the login's grant, as a client that
// followed every answer holds it; nil once the grant is revoked.
func (s *testServer) token() *oauth2.Token {
	return s.Current(s.login.RefreshToken)
}

// pairOf returns the grant and pair number of a refresh token the server
// issued, from its documented form "rt-<grant>-<pair>-…", as TokenEvent
// names the refresh token a request presented.
func pairOf(rt string) (grant, pair int) {
	fmt.Sscanf(rt, "rt-%d-%d-", &grant, &pair)
	return grant, pair
}

// newEngine returns an engine over srv (srv.Config() unless c has an
// endpoint) with c.Store (a MemoryStore if nil) holding srv's current
// login, made by logIn if there is none yet.
func newEngine(t testing.TB, srv *testServer, c Config) *Engine {
	t.Helper()
	if c.OAuth2 == nil && c.Endpoint == nil {
		c.OAuth2 = srv.Config()
	}
	if c.Store == nil {
		c.Store = new(MemoryStore)
	}
	if srv.login == nil {
		srv.logIn()
	}
	if err := c.Store.Save(context.Background(), DefaultKey, srv.token()); err != nil {
		t.Fatal(err)
	}
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// memEndpoint is srv's token endpoint served in memory, for synctest
// bubbles, where a network round trip would stop the fake clock.
func memEndpoint(srv *testServer) *FormEndpoint {
	return &FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID, ClientSecret: refreshtest.DefaultClientSecret,
		Auth: AuthInBody, HTTPClient: &http.Client{Transport: srv.Transport()}}
}

// apiStub is the package's one API stub, for Transport.Base: the server's
// protected API served in memory (refreshtest.Server.Transport), so it
// accepts exactly the access tokens the server does and counts in its
// Stats, whatever host a request names; it answers "ok" to GET and echoes
// other bodies. Unlike a network connection it reads and closes the request
// body before it answers, so body close counts are exact as soon as
// RoundTrip returns, and it works inside synctest bubbles.
type apiStub struct {
	srv *testServer
	// before, if set, runs first, before the token is judged: a barrier.
	before func(r *http.Request)
	// rejected, if set, is given each answer that is not a 200 and
	// returns the answer to give instead (it may be the same): another
	// status or challenge, or one held until the test is ready.
	rejected func(r *http.Request, resp *http.Response) *http.Response
	calls    atomic.Int64 // requests
}

func (a *apiStub) RoundTrip(r *http.Request) (*http.Response, error) {
	a.calls.Add(1)
	if a.before != nil {
		a.before(r)
	}
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	u, _ := url.Parse(a.srv.URL)
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := a.srv.Transport().RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	out := response(r, resp.StatusCode, resp.Header, string(b))
	if resp.StatusCode != http.StatusOK && a.rejected != nil {
		out = a.rejected(r, out)
	}
	return out, nil
}

// The protected API's 401 for a revoked access token, as apiStub and
// srv.URL answer it.
const (
	revokedBody      = "invalid_token: the access token was revoked\n"
	invalidChallenge = `Bearer realm="refreshtest", error="invalid_token"`
)

// scripted is a token endpoint that answers what its test scripts, for the
// answers refreshtest.Server does not give (an invalid_grant with 200,
// expires_in as a string, a truncated body, a redirect…): in memory
// (client), so that the real wire code runs inside synctest bubbles, or
// over HTTP (url). answer is called for each request; calls counts them.
type scripted struct {
	mu     sync.Mutex
	calls  int
	at     []time.Time // when each call came
	answer func(r *http.Request, n int) *http.Response
}

func (s *scripted) serve(r *http.Request) *http.Response {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return s.answer(r, n)
}

func (s *scripted) client() *http.Client {
	return &http.Client{Transport: stubRT(func(r *http.Request) (*http.Response, error) { return s.serve(r), nil })}
}

// url serves s over HTTP until the test ends and returns its token URL.
func (s *scripted) url(t testing.TB) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := s.serve(r)
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/token"
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// fixed scripts the same answer to every request.
func fixed(status int, header http.Header, body string) *scripted {
	return &scripted{answer: func(r *http.Request, _ int) *http.Response { return response(r, status, header.Clone(), body) }}
}

func jsonResp(r *http.Request, status int, body string) *http.Response {
	return response(r, status, http.Header{"Content-Type": {"application/json"}}, body)
}

// waitFor polls cond until it holds, more slowly as time passes. Nothing
// is asserted about how long that takes: the deadline only turns a hang
// into a failure.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(pause)
	}
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
