package refreshtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// reply is a response as the tests look at it.
type reply struct {
	status int
	header http.Header
	body   string
	fields map[string]any // the JSON body; nil if it is not a JSON object
}

func (r reply) str(k string) string {
	s, _ := r.fields[k].(string)
	return s
}

// code is the OAuth error code of the reply, "" if none.
func (r reply) code() string { return r.str("error") }

func newServer(t *testing.T, o refreshtest.Options) *refreshtest.Server {
	t.Helper()
	srv := refreshtest.NewServer(o)
	t.Cleanup(srv.Close)
	return srv
}

// do sends req and reads the whole answer.
func do(t *testing.T, c *http.Client, req *http.Request) reply {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: string(b)}
	json.Unmarshal(b, &r.fields)
	return r
}

// formRequest is a token request with form (encoded as is) and the given
// edits.
func formRequest(t *testing.T, srv *refreshtest.Server, form url.Values, edits ...func(*http.Request)) *http.Request {
	t.Helper()
	return postForm(t, srv.TokenURL, form, edits...)
}

// revocationRequest is formRequest to the revocation endpoint.
func revocationRequest(t *testing.T, srv *refreshtest.Server, form url.Values, edits ...func(*http.Request)) *http.Request {
	t.Helper()
	return postForm(t, srv.RevocationURL, form, edits...)
}

func postForm(t *testing.T, target string, form url.Values, edits ...func(*http.Request)) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, e := range edits {
		e(req)
	}
	return req
}

// refreshForm is a refresh request with the default credentials in the body.
func refreshForm(rt string) url.Values {
	return url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {rt},
		"client_id":     {refreshtest.DefaultClientID},
		"client_secret": {refreshtest.DefaultClientSecret},
	}
}

// postRefresh sends a standard refresh request for rt with the default
// credentials in the body.
func postRefresh(t *testing.T, srv *refreshtest.Server, rt string) reply {
	t.Helper()
	return do(t, nil, formRequest(t, srv, refreshForm(rt)))
}

// mustRefresh refreshes rt and returns the new access and refresh token.
func mustRefresh(t *testing.T, srv *refreshtest.Server, rt string) (at, newRT string) {
	t.Helper()
	r := postRefresh(t, srv, rt)
	if r.status != http.StatusOK || r.str("access_token") == "" {
		t.Fatalf("refresh: got %d %s, want 200 with a token", r.status, r.body)
	}
	return r.str("access_token"), r.str("refresh_token")
}

// api sends method to the protected API at path with the access token at
// ("" for no Authorization header) and body.
func api(t *testing.T, srv *refreshtest.Server, method, path, at, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if at != "" {
		req.Header.Set("Authorization", "Bearer "+at)
	}
	return do(t, nil, req)
}

// apiStatus is the status of GET /resource with at.
func apiStatus(t *testing.T, srv *refreshtest.Server, at string) int {
	t.Helper()
	return api(t, srv, http.MethodGet, "/resource", at, "").status
}

// waitFor polls cond until it holds, failing the test after 30 s: a
// watchdog against a hang, long enough for a loaded machine, not a measure
// of speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdGranted returns an Options.OnTokenRequest hook that holds the answer
// to every granted refresh (it waits with the request still in flight)
// until release is called, and calls next, if not nil, with every event.
// release is also called when the test ends, before the server is closed
// (which waits for the requests it holds).
func holdGranted(t *testing.T, next func(refreshtest.TokenEvent)) (hook func(refreshtest.TokenEvent), release func()) {
	held := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(held) }) }
	t.Cleanup(release)
	hook = func(ev refreshtest.TokenEvent) {
		if next != nil {
			next(ev)
		}
		if ev.Kind == refreshtest.TokenGranted {
			<-held
		}
	}
	return hook, release
}

// clock is a fake clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
