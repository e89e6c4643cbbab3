package refresh

// Redirects: the token follows a redirect only to the same origin; the
// token and revocation endpoints' redirects are never followed.

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

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

// TestRedirectOtherHost pins that a redirect to another host:port is
// followed but carries no token.
func TestRedirectOtherHost(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
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
	as := newServer(t, refreshtest.Options{})
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
	as := newServer(t, refreshtest.Options{})
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

// TestRedirectNotFollowed: a token or revocation endpoint that redirects
// gets no second request at the new location, so neither a token nor the
// client secret goes there.
func TestRedirectNotFollowed(t *testing.T) {
	target := fixed(200, nil, "")
	targetURL := target.url(t)
	from := (&scripted{answer: func(r *http.Request, _ int) *http.Response {
		return response(r, http.StatusTemporaryRedirect, http.Header{"Location": {targetURL}}, "")
	}}).url(t)
	ep := &FormEndpoint{TokenURL: from, RevocationURL: from, ClientID: "id", ClientSecret: "s", Auth: AuthInBody}
	e, _ := New(Config{Endpoint: ep})
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	_, refreshErr := e.Refresh(t.Context(), "", nil)
	revokeErr := ep.Revoke(t.Context(), &oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	for _, err := range []error{refreshErr, revokeErr} {
		var x *Error
		if !errors.As(err, &x) || x.StatusCode != 307 || x.Temporary() || !errors.Is(err, ErrClientConfig) {
			t.Errorf("err = %v, want a final 307 *Error wrapping ErrClientConfig", err)
		}
	}
	if n := target.count(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}
