package refresh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Helpers of this file are prefixed with "tr" to keep clear of the names
// other test files of the package define.

// trAPI is an in-process twin of as.serveAPI, for use as Transport.Base: it
// accepts only as's current access token, answers any other with 401
// invalid_token and "token rejected", and echoes the body otherwise. Unlike a
// real connection it closes request bodies before returning, so body close
// counts are exact as soon as RoundTrip returns.
func trAPI(as *authServer, calls *atomic.Int64) stubRT {
	return func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+as.token().AccessToken {
			h := http.Header{}
			h.Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
			return response(r, http.StatusUnauthorized, h, "token rejected"), nil
		}
		var body []byte
		if r.Body != nil {
			body, _ = io.ReadAll(r.Body)
		}
		return response(r, http.StatusOK, nil, string(body)), nil
	}
}

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

// trWaitFor polls cond until it holds; the deadline only bounds a hang.
func trWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// trIdleRT is a base with a CloseIdleConnections method that counts calls.
// It is a pointer type so that it can be compared.
type trIdleRT struct {
	rt    http.RoundTripper
	idles atomic.Int32
}

func (b *trIdleRT) RoundTrip(r *http.Request) (*http.Response, error) { return b.rt.RoundTrip(r) }
func (b *trIdleRT) CloseIdleConnections()                             { b.idles.Add(1) }

// trRecorder is an httptest handler that records the Authorization header
// each path received.
type trRecorder struct {
	mu   sync.Mutex
	auth map[string][]string // path → Authorization values, one per request
}

func (rec *trRecorder) record(r *http.Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.auth == nil {
		rec.auth = map[string][]string{}
	}
	rec.auth[r.URL.Path] = append(rec.auth[r.URL.Path], r.Header.Get("Authorization"))
}

func (rec *trRecorder) got(path string) []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.auth[path]...)
}

// --- RoundTripper contract ---

// TestTransportDoesNotModifyRequest pins the RoundTripper contract: the
// caller's request (header map and contents, URL, Body, GetBody) is the same
// after RoundTrip, and never gains an Authorization header, also when the
// request was sent twice around a refresh.
func TestTransportDoesNotModifyRequest(t *testing.T) {
	for _, tc := range []struct {
		name          string
		revoke        bool
		wantRefreshes int64
	}{
		{"success", false, 0},
		{"401 refresh retry", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAuthServer(t)
			e := newEngine(t, as, Config{})
			if tc.revoke {
				as.revokeAccess()
			}
			req, err := http.NewRequest(http.MethodPost, as.apiSrv.URL+"/p?q=1", strings.NewReader("payload"))
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
			if n := as.refreshes.Load(); n != tc.wantRefreshes {
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
				as := newAuthServer(t)
				var calls atomic.Int64
				return (&Transport{Engine: newEngine(t, as, Config{}), Base: trAPI(as, &calls)}).RoundTrip(req)
			},
			wantStatus: http.StatusOK,
		},
		{
			name: "base returns error",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newAuthServer(t)
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
				as := newAuthServer(t)
				e := newEngine(t, as, Config{})
				as.revokeAccess()
				var calls atomic.Int64
				resp, err := (&Transport{Engine: e, Base: trAPI(as, &calls)}).RoundTrip(req)
				if n := as.refreshes.Load(); n != 1 {
					t.Errorf("refreshes = %d, want 1", n)
				}
				return resp, err
			},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name: "refresh fails after 401",
			run: func(t *testing.T, req *http.Request) (*http.Response, error) {
				as := newAuthServer(t)
				e := newEngine(t, as, Config{})
				e.store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-stale", RefreshToken: "rt-bogus"})
				as.revokeAccess()
				var calls atomic.Int64
				// A replayable body, so the refresh error is returned.
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("x")), nil }
				return (&Transport{Engine: e, Base: trAPI(as, &calls)}).RoundTrip(req)
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
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	req, err := http.NewRequest(http.MethodPost, as.apiSrv.URL, strings.NewReader("hello"))
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
	if n := as.served401.Load(); n != 0 {
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
	as := newAuthServer(t)
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
	if code, body, err := get(t, dc, as.apiSrv.URL); err != nil || code != http.StatusOK {
		t.Errorf("GET through Client(nil): got %d %q %v, want 200", code, body, err)
	}
}

// --- Injection ---

// TestInjectAuthorization pins the header format "<type> <token>", with the
// type normalized by oauth2.Token.Type: any case of "bearer", or none, gives
// "Bearer"; another type is sent as is.
func TestInjectAuthorization(t *testing.T) {
	for _, tc := range []struct {
		tokenType string
		want      string
	}{
		{"Bearer", "Bearer at-1"},
		{"bearer", "Bearer at-1"},
		{"BEARER", "Bearer at-1"},
		{"", "Bearer at-1"},
		{"DPoP", "DPoP at-1"},
	} {
		t.Run(fmt.Sprintf("type %q", tc.tokenType), func(t *testing.T) {
			e := trEngine(t, nil)
			if err := e.SetToken(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-1", TokenType: tc.tokenType}); err != nil {
				t.Fatal(err)
			}
			var got []string
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				got = r.Header.Values("Authorization")
				return response(r, http.StatusOK, nil, ""), nil
			})
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("Authorization = %q, want [%q]", got, tc.want)
			}
		})
	}
}

// TestInjectRefusesUnsafeToken pins that a token whose value or type holds
// CR, LF or NUL is never sent (base not called), fails with ErrInvalidToken,
// and is not quoted in the error.
func TestInjectRefusesUnsafeToken(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
	}{
		{"CR in value", &oauth2.Token{AccessToken: "at-secret\rX"}},
		{"LF in value", &oauth2.Token{AccessToken: "at-secret\nX-Evil: 1"}},
		{"CRLF in value", &oauth2.Token{AccessToken: "at-secret\r\nX-Evil: 1"}},
		{"NUL in value", &oauth2.Token{AccessToken: "at-secret\x00"}},
		{"CR in type", &oauth2.Token{AccessToken: "at-secret", TokenType: "Bearer\r"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := trEngine(t, nil)
			if err := e.SetToken(context.Background(), DefaultKey, tc.tok); err != nil {
				t.Fatal(err)
			}
			for i := range 2 { // the second request takes the hot path's other branch
				body := &countingBody{Reader: strings.NewReader("x")}
				req := httptest.NewRequest(http.MethodPost, "http://api.test/x", body)
				resp, err := (&Transport{Engine: e, Base: trNoSend(t)}).RoundTrip(req)
				if resp != nil {
					t.Errorf("request %d: got a response, want none", i)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("request %d: err = %v, want ErrInvalidToken", i, err)
				}
				if err != nil && strings.Contains(err.Error(), "at-secret") {
					t.Errorf("request %d: error %q contains the token value", i, err)
				}
				if n := body.closes.Load(); n != 1 {
					t.Errorf("request %d: body closed %d times, want 1", i, n)
				}
			}
		})
	}
}

// TestInjectRefusesUnsafeRefreshedToken pins that an unsafe token obtained
// by a refresh is not sent either: neither as the retry of a rejected request
// nor as the first use of a stored token.
func TestInjectRefusesUnsafeRefreshedToken(t *testing.T) {
	const bad = "at-2-secret\r\nX-Evil: 1"
	for _, tc := range []struct {
		name     string
		stored   *oauth2.Token
		wantSent int64 // requests that reach the base
	}{
		// The API rejects a good token; the refresh yields a bad one.
		{"retry after 401", &oauth2.Token{AccessToken: "at-1-old", RefreshToken: "rt-1"}, 1},
		// The stored token is bad already; whatever the engine does with it,
		// nothing bad goes out.
		{"bad stored token", &oauth2.Token{AccessToken: "at-1\nsecret", RefreshToken: "rt-1"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := new(MemoryStore)
			store.Save(context.Background(), DefaultKey, tc.stored)
			e, err := New(Config{Store: store, Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
				return &oauth2.Token{AccessToken: bad, RefreshToken: "rt-2"}, nil
			})})
			if err != nil {
				t.Fatal(err)
			}
			var sent atomic.Int64
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				sent.Add(1)
				if got := r.Header.Get("Authorization"); got != "Bearer at-1-old" {
					t.Errorf("sent Authorization %q, want only %q", got, "Bearer at-1-old")
				}
				h := http.Header{}
				h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				return response(r, http.StatusUnauthorized, h, "token rejected"), nil
			})
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if resp != nil {
				resp.Body.Close()
				t.Errorf("got a response (%d), want none", resp.StatusCode)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("err = %v, want ErrInvalidToken", err)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q contains the token value", err)
			}
			if n := sent.Load(); n != tc.wantSent {
				t.Errorf("requests sent = %d, want %d", n, tc.wantSent)
			}
		})
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
			as := newAuthServer(t)
			e := newEngine(t, as, Config{NeedsRefresh: tc.pred})
			as.revokeAccess()
			var calls atomic.Int64
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				calls.Add(1)
				if r.Header.Get("Authorization") == "Bearer "+as.token().AccessToken {
					return response(r, http.StatusOK, nil, "ok"), nil
				}
				h := http.Header{}
				for k, v := range tc.header {
					h.Set(k, v)
				}
				return response(r, tc.status, h, "rejected"), nil
			})
			resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			body := trReadBody(t, resp)

			wantStatus, wantBody, wantRefreshes, wantCalls := tc.status, "rejected", int64(0), int64(1)
			if tc.wantRefresh {
				wantStatus, wantBody, wantRefreshes, wantCalls = http.StatusOK, "ok", 1, 2
			}
			if resp.StatusCode != wantStatus || body != wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, wantStatus, wantBody)
			}
			if n := as.refreshes.Load(); n != wantRefreshes {
				t.Errorf("refreshes = %d, want %d", n, wantRefreshes)
			}
			if n := calls.Load(); n != wantCalls {
				t.Errorf("API calls = %d, want %d", n, wantCalls)
			}
		})
	}
}

// TestTransportLate401NoSecondRefresh pins "one refresh per rejected token":
// a request whose 401 for the old token arrives after another request has
// already refreshed retries with the new token instead of refreshing again.
func TestTransportLate401NoSecondRefresh(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()
	arrived, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	api := trAPI(as, &calls)
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		resp, err := api(r) // judged now, with the token of now
		if r.Header.Get("X-Late") != "" && resp.StatusCode == http.StatusUnauthorized {
			close(arrived)
			<-release
		}
		return resp, err
	})
	tr := &Transport{Engine: e, Base: base}

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
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes after the first request = %d, want 1", n)
	}

	close(release)
	if code := <-late; code != http.StatusOK {
		t.Errorf("late request: status %d, want 200", code)
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes after the late request = %d, want 1", n)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("API calls = %d, want 4 (two requests, each retried once)", n)
	}
}

// --- Replay ---

// TestReplayBodies pins that a request with a replayable body (nil,
// http.NoBody, or GetBody set) is retried once after a refresh, with the same
// body as the original.
func TestReplayBodies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		body   func() io.Reader // nil: no body
		want   string
	}{
		{"nil body", http.MethodGet, nil, ""},
		{"http.NoBody", http.MethodPost, func() io.Reader { return http.NoBody }, ""},
		{"strings.Reader", http.MethodPost, func() io.Reader { return strings.NewReader("from strings") }, "from strings"},
		{"bytes.Reader", http.MethodPut, func() io.Reader { return bytes.NewReader([]byte("from bytes")) }, "from bytes"},
		{"bytes.Buffer", http.MethodPatch, func() io.Reader { return bytes.NewBufferString("from buffer") }, "from buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newAuthServer(t)
			e := newEngine(t, as, Config{})
			as.revokeAccess()
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req, err := http.NewRequest(tc.method, as.apiSrv.URL, body)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&Transport{Engine: e}).RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			if got := trReadBody(t, resp); resp.StatusCode != http.StatusOK || got != tc.want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, tc.want)
			}
			if n := as.refreshes.Load(); n != 1 {
				t.Errorf("refreshes = %d, want 1", n)
			}
			if n := as.served401.Load(); n != 1 {
				t.Errorf("API 401s = %d, want 1", n)
			}
		})
	}
}

// TestReplayCustomGetBody pins that the retry takes its body from GetBody,
// called exactly once, and that both bodies are closed.
func TestReplayCustomGetBody(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()
	first := &countingBody{Reader: strings.NewReader("custom")}
	var replays []*countingBody
	req, err := http.NewRequest(http.MethodPost, "http://api.test/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = first
	req.GetBody = func() (io.ReadCloser, error) {
		b := &countingBody{Reader: strings.NewReader("custom")}
		replays = append(replays, b)
		return b, nil
	}
	var calls atomic.Int64
	resp, err := (&Transport{Engine: e, Base: trAPI(as, &calls)}).RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusOK || got != "custom" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, got, "custom")
	}
	if len(replays) != 1 {
		t.Fatalf("GetBody called %d times, want 1", len(replays))
	}
	if a, b := first.closes.Load(), replays[0].closes.Load(); a != 1 || b != 1 {
		t.Errorf("closes: original %d, replay %d; want 1 and 1", a, b)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("API calls = %d, want 2", n)
	}
}

// TestReplayNonReplayableBody pins that a 401 for a request whose body cannot
// be replayed is handed back untouched with a nil error, that the refresh
// happens anyway, and that the next request uses the new token without
// another refresh.
func TestReplayNonReplayableBody(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()
	tr := &Transport{Engine: e}

	req, err := http.NewRequest(http.MethodPost, as.apiSrv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(strings.NewReader("x")) // GetBody stays nil
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: err = %v, want nil with the 401", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || got != "token rejected" {
		t.Errorf("got %d %q, want 401 %q", resp.StatusCode, got, "token rejected")
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
		t.Errorf("WWW-Authenticate = %q, want the API's challenge", got)
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.served401.Load(); n != 1 {
		t.Errorf("API 401s = %d, want 1 (no retry)", n)
	}

	req, err = http.NewRequest(http.MethodPost, as.apiSrv.URL, strings.NewReader("next"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("next RoundTrip: %v", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusOK || got != "next" {
		t.Errorf("next request: got %d %q, want 200 %q", resp.StatusCode, got, "next")
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes after next request = %d, want 1", n)
	}
	if n := as.served401.Load(); n != 1 {
		t.Errorf("API 401s after next request = %d, want 1", n)
	}
}

// TestReplayGetBodyError pins that when GetBody fails the 401 is returned
// intact with a nil error (after the one refresh).
func TestReplayGetBodyError(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	as.revokeAccess()
	req, err := http.NewRequest(http.MethodPost, as.apiSrv.URL, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	var getBodies atomic.Int32
	req.GetBody = func() (io.ReadCloser, error) {
		getBodies.Add(1)
		return nil, errors.New("cannot rewind")
	}
	resp, err := (&Transport{Engine: e}).RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: err = %v, want nil with the 401", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || got != "token rejected" {
		t.Errorf("got %d %q, want 401 %q", resp.StatusCode, got, "token rejected")
	}
	if n := getBodies.Load(); n != 1 {
		t.Errorf("GetBody called %d times, want 1", n)
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.served401.Load(); n != 1 {
		t.Errorf("API 401s = %d, want 1", n)
	}
}

// TestReplaySecond401 pins "retry at most once": if the API rejects the
// retried request too, that second 401 is returned, with one refresh in all,
// and the first 401's body is closed, not leaked.
func TestReplaySecond401(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	var bodies []*countingBody
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		b := &countingBody{Reader: strings.NewReader(fmt.Sprintf("rejection %d", len(bodies)+1))}
		bodies = append(bodies, b)
		resp := response(r, http.StatusUnauthorized, nil, "")
		resp.Header.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		resp.Body = b
		return resp, nil
	})
	resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	if len(bodies) != 2 {
		t.Fatalf("API calls = %d, want 2", len(bodies))
	}
	if n := bodies[0].closes.Load(); n != 1 {
		t.Errorf("first 401 body closed %d times, want 1", n)
	}
	if n := bodies[1].closes.Load(); n != 0 {
		t.Errorf("returned 401 body closed %d times before the caller read it, want 0", n)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || got != "rejection 2" {
		t.Errorf("got %d %q, want 401 %q", resp.StatusCode, got, "rejection 2")
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// TestReplayRefreshFailureDiscards401 pins that when the refresh after a 401
// fails for a replayable request, the caller gets the refresh error (no
// response) and the 401's body is closed.
func TestReplayRefreshFailureDiscards401(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	e.store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-stale", RefreshToken: "rt-bogus"})
	as.revokeAccess()
	var body *countingBody
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		if body != nil {
			t.Errorf("request sent twice, want once")
		}
		body = &countingBody{Reader: strings.NewReader("token rejected")}
		resp := response(r, http.StatusUnauthorized, nil, "")
		resp.Body = body
		return resp, nil
	})
	resp, err := (&Transport{Engine: e, Base: base}).RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.test/x", nil))
	if resp != nil {
		t.Errorf("got a response (%d) with the error, want none", resp.StatusCode)
	}
	if !errors.Is(err, ErrReauthRequired) {
		t.Errorf("err = %v, want ErrReauthRequired", err)
	}
	if body == nil || body.closes.Load() != 1 {
		t.Errorf("discarded 401 body not closed exactly once")
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// --- Redirects ---

// TestRedirectOtherHost pins that a redirect to another host:port is
// followed but carries no token.
func TestRedirectOtherHost(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	var rec trRecorder
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		io.WriteString(w, "landed")
	}))
	defer other.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	}))
	defer api.Close()

	code, body, err := get(t, e.Client(nil), api.URL+"/start")
	if err != nil || code != http.StatusOK || body != "landed" {
		t.Errorf("got %d %q %v, want 200 %q", code, body, err, "landed")
	}
	want := "Bearer " + as.token().AccessToken
	if got := rec.got("/start"); len(got) != 1 || got[0] != want {
		t.Errorf("API got Authorization %q, want [%q]", got, want)
	}
	if got := rec.got("/landing"); len(got) != 1 || got[0] != "" {
		t.Errorf("other host got Authorization %q, want one request without it", got)
	}
}

// TestRedirectSameHost pins that a redirect to another path of the same
// origin keeps the token.
func TestRedirectSameHost(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	var rec trRecorder
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		if r.URL.Path == "/a" {
			http.Redirect(w, r, "/b", http.StatusFound)
			return
		}
		io.WriteString(w, "b")
	}))
	defer api.Close()

	code, body, err := get(t, e.Client(nil), api.URL+"/a")
	if err != nil || code != http.StatusOK || body != "b" {
		t.Errorf("got %d %q %v, want 200 %q", code, body, err, "b")
	}
	want := "Bearer " + as.token().AccessToken
	for _, p := range []string{"/a", "/b"} {
		if got := rec.got(p); len(got) != 1 || got[0] != want {
			t.Errorf("%s got Authorization %q, want [%q]", p, got, want)
		}
	}
}

// TestRedirectHTTPSToHTTP pins that a redirect from an https API to a plain
// http server is followed without the token.
func TestRedirectHTTPSToHTTP(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	var rec trRecorder
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		io.WriteString(w, "plain")
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r)
		http.Redirect(w, r, plain.URL+"/plain", http.StatusFound)
	}))
	defer secure.Close()

	c := &http.Client{Transport: &Transport{Engine: e, Base: secure.Client().Transport}}
	code, body, err := get(t, c, secure.URL+"/secure")
	if err != nil || code != http.StatusOK || body != "plain" {
		t.Errorf("got %d %q %v, want 200 %q", code, body, err, "plain")
	}
	want := "Bearer " + as.token().AccessToken
	if got := rec.got("/secure"); len(got) != 1 || got[0] != want {
		t.Errorf("https API got Authorization %q, want [%q]", got, want)
	}
	if got := rec.got("/plain"); len(got) != 1 || got[0] != "" {
		t.Errorf("http server got Authorization %q, want one request without it", got)
	}
}

// TestRedirectOriginThroughClient pins the origin rule through the real
// http.Client redirect machinery, for URLs httptest cannot provide (same
// host and port, another scheme). The base never dials.
func TestRedirectOriginThroughClient(t *testing.T) {
	for _, tc := range []struct {
		from, to  string
		wantToken bool
	}{
		{"https://api.test/a", "https://api.test/b", true},
		{"https://api.test/a", "https://API.test:443/b", true},
		{"https://api.test:8443/a", "http://api.test:8443/b", false}, // downgrade, same port
		{"https://api.test/a", "http://api.test:443/b", false},       // downgrade, same port
		{"https://api.test/a", "https://other.test/b", false},
		{"https://api.test/a", "https://api.test:8443/b", false},
		{"http://api.test/a", "https://api.test/b", false},          // default ports differ
		{"http://api.test:8080/a", "https://api.test:8080/b", true}, // upgrade, same port
	} {
		t.Run(tc.from+" to "+tc.to, func(t *testing.T) {
			e := trEngine(t, map[string]*oauth2.Token{DefaultKey: {AccessToken: "at-1"}})
			var got []string // Authorization per hop
			base := stubRT(func(r *http.Request) (*http.Response, error) {
				got = append(got, r.Header.Get("Authorization"))
				if r.URL.String() == tc.from {
					h := http.Header{}
					h.Set("Location", tc.to)
					return response(r, http.StatusFound, h, ""), nil
				}
				return response(r, http.StatusOK, nil, "done"), nil
			})
			c := &http.Client{Transport: &Transport{Engine: e, Base: base}}
			code, body, err := get(t, c, tc.from)
			if err != nil || code != http.StatusOK || body != "done" {
				t.Fatalf("got %d %q %v, want 200 %q", code, body, err, "done")
			}
			want := []string{"Bearer at-1", ""}
			if tc.wantToken {
				want[1] = "Bearer at-1"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Authorization per hop: got %q, want %q", got, want)
			}
		})
	}
}

// TestSameOrigin pins sameOrigin on hand-built redirect chains: the final
// request is compared with the first one of the chain; a chain whose start is
// unknown is not trusted.
func TestSameOrigin(t *testing.T) {
	chain := func(urls ...string) *http.Request {
		var prev *http.Request
		for _, u := range urls {
			r, err := http.NewRequest(http.MethodGet, u, nil)
			if err != nil {
				t.Fatal(err)
			}
			if prev != nil {
				r.Response = &http.Response{StatusCode: http.StatusFound, Request: prev}
			}
			prev = r
		}
		return prev
	}
	orphan, _ := http.NewRequest(http.MethodGet, "https://api.test/b", nil)
	orphan.Response = &http.Response{StatusCode: http.StatusFound}

	for _, tc := range []struct {
		name string
		req  *http.Request
		want bool
	}{
		{"not a redirect", chain("https://api.test/a"), true},
		{"same host, other path", chain("https://api.test/a", "https://api.test/b"), true},
		{"host differs only in case", chain("https://api.test/a", "https://API.TEST/b"), true},
		{"default port made explicit", chain("https://api.test/a", "https://api.test:443/b"), true},
		{"other host", chain("https://api.test/a", "https://evil.test/a"), false},
		{"subdomain", chain("https://api.test/a", "https://x.api.test/a"), false},
		{"same host, other port", chain("http://127.0.0.1:8080/a", "http://127.0.0.1:8081/a"), false},
		{"https to http, same host and port", chain("https://api.test:8443/a", "http://api.test:8443/b"), false},
		{"https to http, default ports", chain("https://api.test/a", "http://api.test/b"), false},
		// http→https: allowed only if the ports match; the default ports
		// (80, 443) differ, so an upgrade to the default port is refused.
		{"http to https, default ports", chain("http://api.test/a", "https://api.test/b"), false},
		{"http to https, same explicit port", chain("http://api.test:8080/a", "https://api.test:8080/b"), true},
		{"Response without Request", orphan, false},
		{"A to A to B", chain("https://api.test/1", "https://api.test/2", "https://evil.test/3"), false},
		{"A to B to A", chain("https://api.test/1", "https://evil.test/2", "https://api.test/3"), true},
		{"A to http A to https A", chain("https://api.test/1", "http://api.test/2", "https://api.test/3"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameOrigin(tc.req); got != tc.want {
				t.Errorf("sameOrigin(%s) = %v, want %v", tc.req.URL, got, tc.want)
			}
		})
	}
}

// --- Keys ---

// TestKeysSelectToken pins how a request's key is chosen: WithKey in its
// context, DefaultKey without one (or with ""), and a Transport's fixed Key
// over the context.
func TestKeysSelectToken(t *testing.T) {
	e := trEngine(t, map[string]*oauth2.Token{
		DefaultKey: {AccessToken: "at-default"},
		"alice":    {AccessToken: "at-alice"},
		"bob":      {AccessToken: "at-bob"},
	})
	var got string
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Authorization")
		return response(r, http.StatusOK, nil, ""), nil
	})
	bg := context.Background()
	for _, tc := range []struct {
		name     string
		fixedKey string
		ctx      context.Context
		want     string
	}{
		{"context alice", "", WithKey(bg, "alice"), "Bearer at-alice"},
		{"context bob", "", WithKey(bg, "bob"), "Bearer at-bob"},
		{"no key", "", bg, "Bearer at-default"},
		{"empty key", "", WithKey(bg, ""), "Bearer at-default"},
		{"fixed key over context", "bob", WithKey(bg, "alice"), "Bearer at-bob"},
		{"fixed key without context", "alice", bg, "Bearer at-alice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got = ""
			req := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil).WithContext(tc.ctx)
			resp, err := (&Transport{Engine: e, Base: base, Key: tc.fixedKey}).RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if got != tc.want {
				t.Errorf("Authorization = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestKeysConcurrent pins that tokens never cross keys when many requests of
// two keys run at once and each key's token is rejected and refreshed
// mid-way: every request goes out with its own key's token, and each key is
// refreshed exactly once.
func TestKeysConcurrent(t *testing.T) {
	keys := []string{"alice", "bob"}
	store := new(MemoryStore)
	for _, k := range keys {
		store.Save(context.Background(), k, &oauth2.Token{AccessToken: "at-" + k + "-1", RefreshToken: "rt-" + k + "-1"})
	}
	var refreshes sync.Map // refresh token → *atomic.Int32
	e, err := New(Config{Store: store, Endpoint: EndpointFunc(func(_ context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		n, _ := refreshes.LoadOrStore(tok.RefreshToken, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		for _, k := range keys {
			if tok.RefreshToken == "rt-"+k+"-1" {
				return &oauth2.Token{AccessToken: "at-" + k + "-2", RefreshToken: "rt-" + k + "-2"}, nil
			}
		}
		t.Errorf("refresh with unexpected refresh token %q", tok.RefreshToken)
		return nil, errors.New("unexpected refresh token")
	})})
	if err != nil {
		t.Fatal(err)
	}
	// The API accepts only the second token of each key, so every key is
	// refreshed while requests are in flight.
	base := stubRT(func(r *http.Request) (*http.Response, error) {
		key := r.Header.Get("X-Key")
		switch got := r.Header.Get("Authorization"); got {
		case "Bearer at-" + key + "-2":
			return response(r, http.StatusOK, nil, key), nil
		case "Bearer at-" + key + "-1":
			h := http.Header{}
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			return response(r, http.StatusUnauthorized, h, "token rejected"), nil
		default:
			t.Errorf("request of key %q sent Authorization %q", key, got)
			return response(r, http.StatusBadRequest, nil, ""), nil
		}
	})
	tr := &Transport{Engine: e, Base: base}

	const perKey = 50
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range perKey * len(keys) {
		key := keys[i%len(keys)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req := httptest.NewRequest(http.MethodGet, "http://api.test/x", nil).WithContext(WithKey(context.Background(), key))
			req.Header.Set("X-Key", key)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Errorf("key %q: RoundTrip: %v", key, err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != key {
				t.Errorf("key %q: got %d %q, want 200 %q", key, resp.StatusCode, body, key)
			}
			if got, want := resp.Request.Header.Get("Authorization"), "Bearer at-"+key+"-2"; got != want {
				t.Errorf("key %q: final request sent %q, want %q", key, got, want)
			}
		}()
	}
	close(start)
	wg.Wait()

	for _, k := range keys {
		var n int32
		if v, ok := refreshes.Load("rt-" + k + "-1"); ok {
			n = v.(*atomic.Int32).Load()
		}
		if n != 1 {
			t.Errorf("key %q refreshed %d times, want 1", k, n)
		}
		tok, err := store.Load(context.Background(), k)
		if err != nil || tok.AccessToken != "at-"+k+"-2" {
			t.Errorf("key %q: stored %v %v, want access token %q", k, tok, err, "at-"+k+"-2")
		}
	}
}

// --- Context cancellation ---

// TestCancelWhileRefreshing pins that a caller whose context ends while the
// refresh it started is in flight returns context.Canceled at once, while
// the refresh goes on: it is saved, a caller waiting on it succeeds, and the
// next request needs no other refresh.
func TestCancelWhileRefreshing(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	hold := make(chan struct{})
	as.hold = hold
	var once sync.Once
	release := func() { once.Do(func() { close(hold) }) }
	t.Cleanup(release) // before the servers close, even if the test fails
	as.revokeAccess()
	c := e.Client(nil)

	type result struct {
		code int
		err  error
	}
	send := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, as.apiSrv.URL, nil)
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
	first := send(ctx) // starts the refresh, which blocks on hold
	trWaitFor(t, "the refresh to reach the token endpoint", func() bool { return as.refreshes.Load() == 1 })
	second := send(context.Background())
	trWaitFor(t, "the second caller's 401", func() bool { return as.served401.Load() == 2 })

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
	if tok, err := e.store.Load(context.Background(), DefaultKey); err != nil || tok.AccessToken != want.AccessToken || tok.RefreshToken != want.RefreshToken {
		t.Errorf("stored token %v %v, want the refreshed one", tok, err)
	}
	if code, body, err := get(t, c, as.apiSrv.URL); err != nil || code != http.StatusOK {
		t.Errorf("next request: got %d %q %v, want 200", code, body, err)
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.served401.Load(); n != 2 {
		t.Errorf("API 401s = %d, want 2", n)
	}
}
