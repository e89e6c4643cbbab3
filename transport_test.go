package refresh

// Transport as a RoundTripper: the contract (the caller's request is left
// alone, its body closed exactly once), which rejections it answers with a
// refresh and a retry, and a caller that gives up mid-refresh. The helpers
// prefixed with "tr" serve the Transport's tests in this and the inject,
// replay and redirect files.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// trEngine returns an engine over a MemoryStore holding toks (by key) whose
// token endpoint must not be called.
func trEngine(t *testing.T, toks map[string]*oauth2.Token) *Engine {
	t.Helper()
	store := new(MemoryStore)
	for k, tok := range toks {
		if err := store.Save(context.Background(), k, tok); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(Config{Store: store, Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		t.Errorf("token endpoint called, want no refresh")
		return nil, errors.New("unexpected refresh")
	})})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// trNoSend is a base that must never be called.
func trNoSend(t *testing.T) stubRT {
	return func(r *http.Request) (*http.Response, error) {
		t.Errorf("base called for %s with Authorization %q, want the request not sent", r.URL, r.Header.Get("Authorization"))
		return nil, errors.New("must not send")
	}
}

// trReadBody reads and closes resp.Body.
func trReadBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("reading response body: %v", err)
	}
	return string(b)
}

// trIdleRT is a base with a CloseIdleConnections method that counts calls.
// It is a pointer type so that it can be compared.
type trIdleRT struct {
	rt    http.RoundTripper
	idles atomic.Int32
}

func (b *trIdleRT) RoundTrip(r *http.Request) (*http.Response, error) { return b.rt.RoundTrip(r) }
func (b *trIdleRT) CloseIdleConnections()                             { b.idles.Add(1) }

// --- RoundTripper contract ---

// TestTransportDoesNotModifyRequest pins the RoundTripper contract: the
// caller's request (header map and contents, URL, Body, GetBody) is the same
// after RoundTrip, and never gains an Authorization header, also when the
// request was sent twice around a refresh.
func TestTransportDoesNotModifyRequest(t *testing.T) {
	for _, tc := range []struct {
		name          string
		revoke        bool
		wantRefreshes int
	}{
		{"success", false, 0},
		{"401 refresh retry", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newServer(t, refreshtest.Options{})
			e := newEngine(t, as, Config{})
			if tc.revoke {
				as.RevokeAccessTokens()
			}
			req, err := http.NewRequest(http.MethodPost, as.URL+"/p?q=1", strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Custom", "a")
			req.Header.Add("X-Multi", "1")
			req.Header.Add("X-Multi", "2")

			hdr := req.Header.Clone()
			hdrMap := reflect.ValueOf(req.Header).UnsafePointer()
			u, uCopy := req.URL, *req.URL
			body, cl := req.Body, req.ContentLength
			getBody := reflect.ValueOf(req.GetBody).Pointer()

			resp, err := (&Transport{Engine: e}).RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if got := trReadBody(t, resp); resp.StatusCode != http.StatusOK || got != "payload" {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, "payload")
			}
			if n := as.Stats().TokenRequests; n != tc.wantRefreshes {
				t.Errorf("refreshes = %d, want %d", n, tc.wantRefreshes)
			}

			if got := req.Header.Get("Authorization"); got != "" {
				t.Errorf("caller's Authorization header: got %q, want none", got)
			}
			if !reflect.DeepEqual(req.Header, hdr) {
				t.Errorf("caller's header: got %v, want %v", req.Header, hdr)
			}
			if reflect.ValueOf(req.Header).UnsafePointer() != hdrMap {
				t.Errorf("caller's Header map was replaced")
			}
			if req.URL != u || *req.URL != uCopy {
				t.Errorf("caller's URL: got %q, want %q (same pointer)", req.URL, &uCopy)
			}
			if req.Body != body {
				t.Errorf("caller's Body field was replaced")
			}
			if req.ContentLength != cl {
				t.Errorf("caller's ContentLength: got %d, want %d", req.ContentLength, cl)
			}
			if reflect.ValueOf(req.GetBody).Pointer() != getBody {
				t.Errorf("caller's GetBody was replaced")
			}
		})
	}
}

// TestTransportClosesBody pins that the request body is closed exactly once
// on every path: by the base when the request is handed on, by the Transport
// itself when it never is. It also pins err == nil whenever a response is
// returned.
func TestTransportClosesBody(t *testing.T) {
	errBase := errors.New("base failed")
	for _, tc := range []struct {
		name string
		// run sends a request whose body is body and GetBody nil.
		run        func(t *testing.T, req *http.Request) (*http.Response, error)
		wantStatus int   // 0: no response
		wantErr    error // errors.Is target; nil: no error
	}{
		{
			name: "success",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newServer(t, refreshtest.Options{})
				return (&Transport{Engine: newEngine(t, as, Config{}), Base: &apiStub{srv: as}}).RoundTrip(req)
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "base returns error",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newServer(t, refreshtest.Options{})
				base := stubRT(func(*http.Request) (*http.Response, error) { return nil, errBase })
				return (&Transport{Engine: newEngine(t, as, Config{}), Base: base}).RoundTrip(req)
			},
			wantErr: errBase,
		},
		{
			name: "acquire error: no token for key",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				e := trEngine(t, nil)
				req = req.WithContext(WithKey(req.Context(), "nobody"))
				return (&Transport{Engine: e, Base: trNoSend(t)}).RoundTrip(req)
			},
			wantErr: ErrReauthRequired,
		},
		{
			name: "nil Engine",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				return (&Transport{Base: trNoSend(t)}).RoundTrip(req)
			},
			wantErr: errNoEngine,
		},
		{
			name: "non-replayable 401",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newServer(t, refreshtest.Options{})
				e := newEngine(t, as, Config{})
				as.RevokeAccessTokens()
				resp, err := (&Transport{Engine: e, Base: &apiStub{srv: as}}).RoundTrip(req)
				if n := as.Stats().TokenRequests; n != 1 {
					t.Errorf("refreshes = %d, want 1", n)
				}
				return resp, err
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "refresh fails after 401",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newServer(t, refreshtest.Options{})
				store := new(MemoryStore)
				e := newEngine(t, as, Config{Store: store})
				store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-stale", RefreshToken: "rt-bogus"})
				as.RevokeAccessTokens()
				// A replayable body, so the refresh error is returned.
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
				return (&Transport{Engine: e, Base: &apiStub{srv: as}}).RoundTrip(req)
			},
			wantErr: ErrReauthRequired,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &countingBody{Reader: strings.NewReader("x")}
			req, err := http.NewRequest(http.MethodPost, "http://api.test/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Body = body
			resp, err := tc.run(t, req)
			if n := body.closes.Load(); n != 1 {
				t.Errorf("body closed %d times, want 1", n)
			}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
				if resp != nil {
					t.Errorf("got a response (%d) with the error", resp.StatusCode)
				}
			case err != nil:
				t.Errorf("err = %v, want nil with a response", err)
			case resp == nil:
				t.Errorf("nil response and nil error")
			default:
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
				}
			}
		})
	}
}

// TestTransportCloseIdleConnections pins that CloseIdleConnections reaches
// Base, directly and through the http.Client of Engine.Client.
func TestTransportCloseIdleConnections(t *testing.T) {
	base := &trIdleRT{rt: trNoSend(t)}
	e := trEngine(t, nil)
	(&Transport{Engine: e, Base: base}).CloseIdleConnections()
	if n := base.idles.Load(); n != 1 {
		t.Errorf("CloseIdleConnections reached base %d times, want 1", n)
	}
	e.Client(&http.Client{Transport: base}).CloseIdleConnections()
	if n := base.idles.Load(); n != 2 {
		t.Errorf("after Client.CloseIdleConnections: base saw %d calls, want 2", n)
	}
	// A nil Base (http.DefaultTransport) must not panic.
	(&Transport{Engine: e}).CloseIdleConnections()
}

// TestTransportNilBase pins that a nil Base sends through
// http.DefaultTransport, with the token.
func TestTransportNilBase(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	req, err := http.NewRequest(http.MethodPost, as.URL, strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&Transport{Engine: e}).RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusOK || got != "hello" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, "hello")
	}
	if n := as.Stats().Served401; n != 0 {
		t.Errorf("API served %d 401s, want 0", n)
	}
}

// TestTransportEngineClient pins Engine.Client: a copy of base that keeps
// its Timeout, Jar and CheckRedirect and wraps base.Transport; base itself is
// not changed; Client(nil) builds on http.DefaultClient without changing it.
func TestTransportEngineClient(t *testing.T) {
	e := trEngine(t, nil)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int32
	rt := &trIdleRT{rt: trNoSend(t)}
	base := &http.Client{
		Transport:     rt,
		Timeout:       42 * time.Second,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { checks.Add(1); return nil },
	}
	c := e.Client(base)
	if c == base {
		t.Fatalf("Client returned base itself, want a copy")
	}
	if base.Transport != http.RoundTripper(rt) {
		t.Errorf("base.Transport was changed")
	}
	tr, ok := c.Transport.(*Transport)
	if !ok {
		t.Fatalf("Transport is %T, want *Transport", c.Transport)
	}
	if tr.Engine != e || tr.Base != http.RoundTripper(rt) || tr.Key != "" {
		t.Errorf("Transport = {Engine: %p, Base: %v, Key: %q}, want {%p, %v, \"\"}", tr.Engine, tr.Base, tr.Key, e, rt)
	}
	if c.Timeout != base.Timeout {
		t.Errorf("Timeout = %v, want %v", c.Timeout, base.Timeout)
	}
	if c.Jar != http.CookieJar(jar) {
		t.Errorf("Jar not kept")
	}
	if c.CheckRedirect == nil {
		t.Fatalf("CheckRedirect not kept")
	}
	c.CheckRedirect(nil, nil)
	if n := checks.Load(); n != 1 {
		t.Errorf("base's CheckRedirect called %d times, want 1", n)
	}

	// Client(nil) works end to end and leaves http.DefaultClient alone.
	as := newServer(t, refreshtest.Options{})
	e2 := newEngine(t, as, Config{})
	dc := e2.Client(nil)
	if dc == http.DefaultClient {
		t.Fatalf("Client(nil) returned http.DefaultClient itself")
	}
	if http.DefaultClient.Transport != nil {
		t.Errorf("http.DefaultClient.Transport = %T, want nil", http.DefaultClient.Transport)
	}
	if tr, ok := dc.Transport.(*Transport); !ok || tr.Engine != e2 || tr.Base != nil {
		t.Errorf("Client(nil).Transport = %#v, want &Transport{Engine: e, Base: nil}", dc.Transport)
	}
	if code, body, err := get(t, dc, as.URL); err != nil || code != http.StatusOK {
		t.Errorf("GET through Client(nil): got %d %q %v, want 200", code, body, err)
	}
}

// --- 401 handling ---

// TestTransport401Handling pins which rejections trigger a refresh and a
// retry: a 401 with invalid_token or no error code; not invalid_request, not
// insufficient_scope (even if NeedsRefresh says yes); and whatever
// NeedsRefresh adds. A response that does not trigger a refresh is returned
// as is.
func TestTransport401Handling(t *testing.T) {
	always := func(*http.Response) bool { return true }
	expiredHeader := func(r *http.Response) bool { return r.Header.Get("X-Token-Expired") == "1" }
	for _, tc := range []struct {
		name   string
		status int
		header map[string]string
		pred   func(*http.Response) bool

		wantRefresh bool
	}{
		{"401 invalid_token", 401, map[string]string{"WWW-Authenticate": `Bearer realm="api", error="invalid_token"`}, nil, true},
		{"401 without WWW-Authenticate", 401, nil, nil, true},
		{"401 Bearer without error code", 401, map[string]string{"WWW-Authenticate": `Bearer realm="api"`}, nil, true},
		{"401 invalid_request", 401, map[string]string{"WWW-Authenticate": `Bearer error="invalid_request"`}, nil, false},
		{"401 invalid_request, NeedsRefresh true", 401, map[string]string{"WWW-Authenticate": `Bearer error="invalid_request"`}, always, true},
		{"403 insufficient_scope", 403, map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`}, nil, false},
		{"403 insufficient_scope, NeedsRefresh true", 403, map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope", scope="admin"`}, always, false},
		{"401 insufficient_scope, NeedsRefresh true", 401, map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`}, always, false},
		{"403 without WWW-Authenticate", 403, nil, nil, false},
		{"400 X-Token-Expired, NeedsRefresh", 400, map[string]string{"X-Token-Expired": "1"}, expiredHeader, true},
		{"400 X-Token-Expired, no NeedsRefresh", 400, map[string]string{"X-Token-Expired": "1"}, nil, false},
		{"400 without the header, NeedsRefresh", 400, nil, expiredHeader, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newServer(t, refreshtest.Options{})
			e := newEngine(t, as, Config{NeedsRefresh: tc.pred})
			as.RevokeAccessTokens()
			// The server's API judges the token; its rejection is
			// answered as this case says.
			base := &apiStub{srv: as, rejected: func(r *http.Request, _ *http.Response) *http.Response {
				h := http.Header{}
				for k, v := range tc.header {
					h.Set(k, v)
				}
				return response(r, tc.status, h, "rejected")
			}}
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			body := trReadBody(t, resp)

			wantStatus, wantBody, wantRefreshes, wantCalls := tc.status, "rejected", 0, int64(1)
			if tc.wantRefresh {
				wantStatus, wantBody, wantRefreshes, wantCalls = http.StatusOK, "ok", 1, 2
			}
			if resp.StatusCode != wantStatus || body != wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, wantStatus, wantBody)
			}
			if n := as.Stats().TokenRequests; n != wantRefreshes {
				t.Errorf("refreshes = %d, want %d", n, wantRefreshes)
			}
			if n := base.calls.Load(); n != wantCalls {
				t.Errorf("API calls = %d, want %d", n, wantCalls)
			}
		})
	}
}

// TestTransportLate401NoSecondRefresh pins "one refresh per rejected token":
// a request whose 401 for the old token arrives after another request has
// already refreshed retries with the new token instead of refreshing again.
func TestTransportLate401NoSecondRefresh(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()
	arrived, release := make(chan struct{}), make(chan struct{})
	api := &apiStub{srv: as, rejected: func(r *http.Request, resp *http.Response) *http.Response {
		// Judged now, with the token of now; answered later.
		if r.Header.Get("X-Late") != "" && resp.StatusCode == http.StatusUnauthorized {
			close(arrived)
			<-release
		}
		return resp
	}}
	tr := &Transport{Engine: e, Base: api}

	late := make(chan int, 1)
	go func() {
		req := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil)
		req.Header.Set("X-Late", "1")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Errorf("late request: %v", err)
			late <- 0
			return
		}
		resp.Body.Close()
		late <- resp.StatusCode
	}()
	<-arrived // the late request was rejected; its 401 is held

	// No t.Fatal before release: the late request must be let go.
	if resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil)); err != nil {
		t.Errorf("first request: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("first request: status %d, want 200", resp.StatusCode)
		}
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes after the first request = %d, want 1", n)
	}

	close(release)
	if code := <-late; code != http.StatusOK {
		t.Errorf("late request: status %d, want 200", code)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes after the late request = %d, want 1", n)
	}
	if n := api.calls.Load(); n != 4 {
		t.Errorf("API calls = %d, want 4 (two requests, each retried once)", n)
	}
}

// --- Context cancellation ---

// TestCancelWhileRefreshing pins that a caller whose context ends while the
// refresh it started is in flight returns context.Canceled at once, while
// the refresh goes on: it is saved, a caller waiting on it succeeds, and the
// next request needs no other refresh.
func TestCancelWhileRefreshing(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(MemoryStore)
	e := newEngine(t, as, Config{Store: store})
	gate := as.Hold()
	release := gate.Release
	t.Cleanup(release) // before the server closes, even if the test fails
	as.RevokeAccessTokens()
	c := e.Client(nil)

	type result struct {
		code int
		err  error
	}
	send := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, as.URL, nil)
			if err != nil {
				t.Errorf("NewRequest: %v", err)
			}
			resp, err := c.Do(req)
			if err != nil {
				ch <- result{0, err}
				return
			}
			resp.Body.Close()
			ch <- result{resp.StatusCode, nil}
		}()
		return ch
	}
	wait := func(ch <-chan result, who string) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(10 * time.Second):
			t.Fatalf("%s still blocked", who)
			return result{}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := send(ctx) // starts the refresh, which waits at the gate
	waitFor(t, "the refresh to reach the token endpoint", func() bool { return gate.Held() == 1 })
	second := send(context.Background())
	waitFor(t, "the second caller's 401", func() bool { return as.Stats().Served401 == 2 })

	cancel()
	if r := wait(first, "cancelled caller"); !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled caller: got %d %v, want context.Canceled", r.code, r.err)
	}
	select {
	case r := <-second:
		t.Fatalf("second caller returned (%d %v) before the refresh was released", r.code, r.err)
	default:
	}

	release()
	if r := wait(second, "second caller"); r.err != nil || r.code != http.StatusOK {
		t.Errorf("second caller: got %d %v, want 200", r.code, r.err)
	}
	want := as.token()
	if tok, err := store.Load(context.Background(), DefaultKey); err != nil || tok.AccessToken != want.AccessToken || tok.RefreshToken != want.RefreshToken {
		t.Errorf("stored token %v %v, want the refreshed one", tok, err)
	}
	if code, body, err := get(t, c, as.URL); err != nil || code != http.StatusOK {
		t.Errorf("next request: got %d %q %v, want 200", code, body, err)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.Stats().Served401; n != 2 {
		t.Errorf("API 401s = %d, want 2", n)
	}
}

// TestKeyFrom: KeyFrom returns what WithKey put in a context, "" otherwise.
func TestKeyFrom(t *testing.T) {
	ctx := context.Background()
	if k := KeyFrom(ctx); k != "" {
		t.Errorf("KeyFrom of a bare context = %q; want \"\"", k)
	}
	if k := KeyFrom(WithKey(ctx, "alice")); k != "alice" {
		t.Errorf("KeyFrom = %q; want alice", k)
	}
}
