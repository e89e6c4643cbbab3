package refresh

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"
)

// TestClassification pins the failure table of the token endpoint: body
// first, then status; what needs a new login, what is the client's
// configuration, what is temporary and retried, and that nothing but a
// temporary failure ever sends the same refresh token again.
func TestClassification(t *testing.T) {
	type want struct {
		reauth, config, temporary bool
		callsPerRefresh           int // token-endpoint calls for one refresh
		latched                   bool
	}
	html := http.Header{"Content-Type": {"text/html"}}
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   want
	}{
		{"invalid_grant 400", 400, nil, `{"error":"invalid_grant"}`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"invalid_grant 500 (gw2.me)", 500, nil, `{"error":"invalid_grant"}`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"invalid_grant with 200", 200, nil, `{"error":"invalid_grant"}`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"invalid_client 401", 401, nil, `{"error":"invalid_client"}`, want{config: true, callsPerRefresh: 1, latched: true}},
		{"unauthorized_client", 400, nil, `{"error":"unauthorized_client"}`, want{config: true, callsPerRefresh: 1, latched: true}},
		{"unsupported_grant_type", 400, nil, `{"error":"unsupported_grant_type"}`, want{config: true, callsPerRefresh: 1, latched: true}},
		{"invalid_scope", 400, nil, `{"error":"invalid_scope"}`, want{config: true, callsPerRefresh: 1, latched: true}},
		{"401 without code", 401, nil, ``, want{config: true, callsPerRefresh: 1, latched: true}},
		{"invalid_request, no peer token", 400, nil, `{"error":"invalid_request","error_description":"please retry"}`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"429", 429, nil, ``, want{temporary: true, callsPerRefresh: 3}},
		{"503 HTML", 503, html, `<html>maintenance</html>`, want{temporary: true, callsPerRefresh: 3}},
		{"502", 502, nil, `bad gateway`, want{temporary: true, callsPerRefresh: 3}},
		{"500 without code", 500, nil, `{}`, want{temporary: true, callsPerRefresh: 3}},
		{"408", 408, nil, ``, want{temporary: true, callsPerRefresh: 3}},
		{"302 not followed", 302, http.Header{"Location": {"https://elsewhere.test/token"}}, ``, want{config: true, callsPerRefresh: 1, latched: true}},
		{"404 HTML", 404, html, `<html><h1>Not Found</h1></html>`, want{config: true, callsPerRefresh: 1, latched: true}},
		{"400 HTML (WSO2, expired refresh token)", 400, html, `<html>Bad Request</html>`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"410 without code", 410, nil, ``, want{callsPerRefresh: 1, latched: true}},
		{"400 unknown code", 400, nil, `{"error":"something_else"}`, want{callsPerRefresh: 1, latched: true}},
		{"200 without access_token", 200, nil, `{"token_type":"bearer"}`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"200 truncated JSON", 200, nil, `{"access_token":"AT","refresh_tok`, want{reauth: true, callsPerRefresh: 1, latched: true}},
		{"200 HTML", 200, html, `<html>login</html>`, want{reauth: true, callsPerRefresh: 1, latched: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
					h := http.Header{"Content-Type": {"application/json"}}
					for k, v := range tc.header {
						h[k] = v
					}
					return response(r, tc.status, h, tc.body)
				}}
				e, _ := New(Config{Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", ClientID: "id", ClientSecret: "sec", Auth: AuthInBody, HTTPClient: srv.client()}})
				e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "AT0", RefreshToken: "RT0"})

				_, err := e.Refresh(t.Context(), "", nil)
				var x *Error
				if !errors.As(err, &x) {
					t.Fatalf("err = %v, want *Error", err)
				}
				if got := errors.Is(err, ErrReauthRequired); got != tc.want.reauth {
					t.Errorf("ErrReauthRequired = %v, want %v (%v)", got, tc.want.reauth, err)
				}
				if got := errors.Is(err, ErrClientConfig); got != tc.want.config {
					t.Errorf("ErrClientConfig = %v, want %v (%v)", got, tc.want.config, err)
				}
				if x.Temporary() != tc.want.temporary {
					t.Errorf("Temporary() = %v, want %v", x.Temporary(), tc.want.temporary)
				}
				if x.StatusCode != tc.status {
					t.Errorf("StatusCode = %d, want %d", x.StatusCode, tc.status)
				}
				if got := srv.count(); got != tc.want.callsPerRefresh {
					t.Errorf("calls for one refresh = %d, want %d", got, tc.want.callsPerRefresh)
				}
				// Later requests: a latched key never calls again; a
				// temporary failure is tried again after its cooldown.
				time.Sleep(time.Minute)
				before := srv.count()
				for range 3 {
					e.Refresh(t.Context(), "", nil)
				}
				called := srv.count() > before
				if called == tc.want.latched {
					t.Errorf("endpoint called again = %v, want %v", called, !tc.want.latched)
				}
			})
		})
	}
}

// TestTemporaryRetries: temporary failures are retried within one
// refresh, with backoff, honouring Retry-After, and every waiter of the
// flight shares the outcome.
func TestTemporaryRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
			if n < 3 {
				return response(r, 429, http.Header{"Retry-After": {"4"}}, "")
			}
			return jsonResp(r, 200, `{"access_token":"AT1","refresh_token":"RT1","expires_in":3600}`)
		}}
		e, _ := New(Config{Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", HTTPClient: srv.client()}})
		e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "AT0", RefreshToken: "RT0"})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range 50 {
			wg.Go(func() {
				tok, err := e.Refresh(t.Context(), "", &oauth2.Token{AccessToken: "AT0"})
				if err != nil || tok.AccessToken != "AT1" {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() != 0 {
			t.Errorf("%d of 50 waiters failed", failed.Load())
		}
		if srv.count() != 3 {
			t.Fatalf("calls = %d, want 3 (two 429s, then success)", srv.count())
		}
		for i := 1; i < 3; i++ {
			if gap := srv.at[i].Sub(srv.at[i-1]); gap < 4*time.Second {
				t.Errorf("gap before attempt %d = %v, want >= Retry-After 4s", i+1, gap)
			}
		}
	})
}

// TestRetriesStayWithinTimeout: attempts stop when the next wait would
// pass the refresh timeout.
func TestRetriesStayWithinTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
			return response(r, 503, http.Header{"Retry-After": {"8"}}, "")
		}}
		e, _ := New(Config{RefreshAttempts: 10, RefreshTimeout: 20 * time.Second,
			Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", HTTPClient: srv.client()}})
		e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "AT0", RefreshToken: "RT0"})
		start := time.Now()
		if _, err := e.Refresh(t.Context(), "", nil); err == nil {
			t.Fatal("err = nil")
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("refresh took %v, want within the 20 s timeout", took)
		}
		if srv.count() != 3 { // at 0 s, 8 s, 16 s; a fourth would start at 24 s
			t.Errorf("calls = %d, want 3", srv.count())
		}
	})
}

// TestInvalidRequestAdoptsPeer: fosite answers the loser of two concurrent
// refreshes "invalid_request"; if the store then holds the winner's token,
// it is adopted and the losing refresh token is not sent again.
func TestInvalidRequestAdoptsPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := new(MemoryStore)
		srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
			// The peer saves its new token while our request is
			// being refused.
			go func() {
				time.Sleep(150 * time.Millisecond)
				store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "PEER-AT", RefreshToken: "PEER-RT", Expiry: time.Now().Add(time.Hour)})
			}()
			return jsonResp(r, 400, `{"error":"invalid_request","error_description":"The request could not be authorized, please retry"}`)
		}}
		e, _ := New(Config{Store: store, Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", HTTPClient: srv.client()}})
		e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "AT0", RefreshToken: "RT0"})
		tok, err := e.Refresh(t.Context(), "", nil)
		if err != nil || tok.AccessToken != "PEER-AT" {
			t.Fatalf("Refresh = %v, %v; want the peer's token", tok, err)
		}
		synctest.Wait()
		if srv.count() != 1 {
			t.Errorf("calls = %d, want 1", srv.count())
		}
	})
}

// TestFormEndpointWire pins the request of each client authentication
// style: credentials in exactly one place, encoded as RFC 6749 §2.3.1 says
// unless raw is asked for, a public client sending only client_id, and the
// optional scope, parameters and headers.
func TestFormEndpointWire(t *testing.T) {
	const id, secret = "my app:1", "s&c r=t/+"
	qe := url.QueryEscape
	for _, tc := range []struct {
		name      string
		ep        FormEndpoint
		wantBasic string // "" means no Authorization header
		wantBody  url.Values
	}{
		{"public client", FormEndpoint{ClientID: id},
			"", url.Values{"client_id": {id}}},
		{"in body", FormEndpoint{ClientID: id, ClientSecret: secret, Auth: AuthInBody},
			"", url.Values{"client_id": {id}, "client_secret": {secret}}},
		{"basic, urlencoded", FormEndpoint{ClientID: id, ClientSecret: secret, Auth: AuthBasic},
			base64.StdEncoding.EncodeToString([]byte(qe(id) + ":" + qe(secret))), url.Values{}},
		{"basic, raw", FormEndpoint{ClientID: id, ClientSecret: secret, Auth: AuthBasicRaw},
			base64.StdEncoding.EncodeToString([]byte(id + ":" + secret)), url.Values{}},
		{"scope, params, headers", FormEndpoint{ClientID: id, Scope: "PRODUCTION",
			Params: url.Values{"resource": {"https://api.test"}, "grant_type": {"password"}}, Header: http.Header{"X-Api-Key": {"k"}}},
			"", url.Values{"client_id": {id}, "scope": {"PRODUCTION"}, "resource": {"https://api.test"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			var form url.Values
			srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
				got = r
				b, _ := io.ReadAll(r.Body)
				form, _ = url.ParseQuery(string(b))
				return jsonResp(r, 200, `{"access_token":"AT1","token_type":"bearer"}`)
			}}
			ep := tc.ep
			ep.TokenURL, ep.HTTPClient = "https://as.test/token", srv.client()
			if _, err := ep.Refresh(t.Context(), &oauth2.Token{RefreshToken: "RT 0+/="}); err != nil {
				t.Fatal(err)
			}
			if got.Method != "POST" || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || got.Header.Get("Accept") != "application/json" {
				t.Errorf("method %s, Content-Type %q, Accept %q", got.Method, got.Header.Get("Content-Type"), got.Header.Get("Accept"))
			}
			if auth := got.Header.Get("Authorization"); auth != "" && auth != "Basic "+tc.wantBasic || auth == "" && tc.wantBasic != "" {
				t.Errorf("Authorization %q, want Basic %q", auth, tc.wantBasic)
			}
			want := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"RT 0+/="}}
			for k, v := range tc.wantBody {
				want[k] = v
			}
			if form.Encode() != want.Encode() {
				t.Errorf("body %q, want %q", form.Encode(), want.Encode())
			}
			for k, v := range tc.ep.Header {
				if got.Header.Get(k) != v[0] {
					t.Errorf("header %s = %q, want %q", k, got.Header.Get(k), v[0])
				}
			}
		})
	}
}

// TestJSONEndpointWire pins the JSON dialect: the refresh token under the
// configured member, the static members and headers, JSON content type.
func TestJSONEndpointWire(t *testing.T) {
	var body map[string]any
	var hdr http.Header
	srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
		hdr = r.Header
		json.NewDecoder(r.Body).Decode(&body)
		return jsonResp(r, 200, `{"access_token":"AT1","refresh_token":"RT1","expires_in":"3600","token_type":"Bearer"}`)
	}}
	ep := &JSONEndpoint{URL: "https://partner.test/v1/auth/token", Field: "refreshToken", Body: map[string]any{"client": "x"},
		Header: http.Header{"partnerId": {"4711"}, "grantType": {"refresh_token"}}, HTTPClient: srv.client()}
	tok, err := ep.Refresh(t.Context(), &oauth2.Token{RefreshToken: "RT0"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "AT1" || tok.RefreshToken != "RT1" || tok.ExpiresIn != 3600 || tok.Expiry.IsZero() {
		t.Errorf("token = %+v", tok)
	}
	if body["refreshToken"] != "RT0" || body["client"] != "x" || len(body) != 2 {
		t.Errorf("body = %v, want refreshToken and client only", body)
	}
	if hdr["partnerId"][0] != "4711" || hdr["grantType"][0] != "refresh_token" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v, want partnerId and grantType as written", hdr)
	}
	def := &JSONEndpoint{URL: "https://partner.test/token", HTTPClient: srv.client()}
	def.Refresh(t.Context(), &oauth2.Token{RefreshToken: "RT0"})
	if body["refresh_token"] != "RT0" {
		t.Errorf("default member: body = %v, want refresh_token", body)
	}
}

// TestEndpointURLs: the refresh token never goes in clear text to a host
// that is not loopback unless the user opts in, nor a token to revoke.
func TestEndpointURLs(t *testing.T) {
	for _, tc := range []struct {
		url       string
		allowHTTP bool
		ok        bool
	}{
		{"https://as.example/token", false, true},
		{"http://127.0.0.1:8080/token", false, true},
		{"http://[::1]/token", false, true},
		{"http://localhost/token", false, true},
		{"http://as.example/token", false, false},
		{"http://as.example/token", true, true},
		{"ftp://as.example/token", true, false},
		{"/token", false, false},
	} {
		_, err := New(Config{Endpoint: &FormEndpoint{TokenURL: tc.url, AllowHTTP: tc.allowHTTP}})
		if (err == nil) != tc.ok {
			t.Errorf("FormEndpoint %q (AllowHTTP %v): err = %v, want ok %v", tc.url, tc.allowHTTP, err, tc.ok)
		}
		_, err = New(Config{Endpoint: &JSONEndpoint{URL: tc.url, AllowHTTP: tc.allowHTTP}})
		if (err == nil) != tc.ok {
			t.Errorf("JSONEndpoint %q: err = %v, want ok %v", tc.url, err, tc.ok)
		}
		_, err = New(Config{Endpoint: &FormEndpoint{TokenURL: "https://as.example/token", RevocationURL: tc.url, AllowHTTP: tc.allowHTTP}})
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "revocation endpoint URL") {
			t.Errorf("FormEndpoint.RevocationURL %q (AllowHTTP %v): err = %v, want ok %v", tc.url, tc.allowHTTP, err, tc.ok)
		}
	}
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "http://as.example/token", AuthStyle: oauth2.AuthStyleInParams}}
	if _, err := New(Config{OAuth2: conf}); err == nil || !strings.Contains(err.Error(), "http://") {
		t.Errorf("oauth2.Config with http:// URL: err = %v, want a refusal", err)
	}
	if _, err := New(Config{Endpoint: &FormEndpoint{TokenURL: "https://as.test", ClientSecret: "s"}}); err == nil {
		t.Errorf("secret without Auth: err = nil")
	}
}

// TestConnectionFailures: a connection reset or refused is temporary and
// retried; a hung endpoint ends at the refresh timeout.
func TestConnectionFailures(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.(*net.TCPConn).SetLinger(0) // reset, not a clean close
			c.Close()
		}
	}()
	e, _ := New(Config{RefreshAttempts: 2, Endpoint: &FormEndpoint{TokenURL: "http://" + ln.Addr().String() + "/token"}})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	_, err = e.Refresh(t.Context(), "", nil)
	var x *Error
	if !errors.As(err, &x) || !x.Temporary() || x.StatusCode != 0 {
		t.Errorf("reset: err = %v, want a temporary *Error without status", err)
	}
	if n := accepts.Load(); n != 2 {
		t.Errorf("connections = %d, want 2 (RefreshAttempts)", n)
	}

	hang := make(chan struct{})
	defer close(hang)
	slow := (&scripted{answer: func(r *http.Request, _ int) *http.Response { <-hang; return response(r, 200, nil, "") }}).url(t)
	e2, _ := New(Config{RefreshTimeout: 100 * time.Millisecond, Endpoint: &FormEndpoint{TokenURL: slow}})
	e2.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	if _, err := e2.Refresh(t.Context(), "", nil); !errors.As(err, &x) || !x.Temporary() {
		t.Errorf("timeout: err = %v, want a temporary *Error", err)
	}
}

// TestErrorSnippetRedacted: an error page keeps a short excerpt for
// diagnosis, without the refresh token or the client secret.
func TestErrorSnippetRedacted(t *testing.T) {
	srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
		return response(r, 404, http.Header{"Content-Type": {"text/html"}}, "<html><body>No route for RT-SECRET-1 with CS-SECRET-2</body></html>")
	}}
	ep := &FormEndpoint{TokenURL: "https://as.test/token", ClientID: "id", ClientSecret: "CS-SECRET-2", Auth: AuthInBody, HTTPClient: srv.client()}
	_, err := ep.Refresh(t.Context(), &oauth2.Token{RefreshToken: "RT-SECRET-1"})
	var x *Error
	if !errors.As(err, &x) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(x.BodySnippet, "No route for") || strings.Contains(x.BodySnippet, "SECRET") || strings.Contains(x.Error(), "SECRET") {
		t.Errorf("snippet %q / error %q: want the text without secrets", x.BodySnippet, x.Error())
	}
}

// TestCooldown: after a temporary failure the key waits before calling the
// endpoint again, so an outage does not turn every request into a call.
func TestCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
			return response(r, 503, http.Header{"Retry-After": {"3"}}, "")
		}}
		e, _ := New(Config{RefreshAttempts: 1, Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", HTTPClient: srv.client()}})
		e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "AT0", RefreshToken: "RT0"})
		_, first := e.Refresh(t.Context(), "", nil)
		for range 10 {
			if _, err := e.Refresh(t.Context(), "", nil); err != first {
				t.Fatalf("during cooldown: err = %v, want the first failure %v", err, first)
			}
		}
		if srv.count() != 1 {
			t.Errorf("calls during cooldown = %d, want 1", srv.count())
		}
		time.Sleep(3 * time.Second) // the Retry-After
		e.Refresh(t.Context(), "", nil)
		if srv.count() != 2 {
			t.Errorf("calls after cooldown = %d, want 2", srv.count())
		}
	})
}
