package refresh

// The retry after a refresh: a replayable body is sent again, once; a
// non-replayable one gets the 401 back untouched.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

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
		{"nil body", http.MethodGet, nil, "ok"}, // the API's answer to GET; that the retry has no body is checked below
		{"http.NoBody", http.MethodPost, func() io.Reader { return http.NoBody }, ""},
		{"strings.Reader", http.MethodPost, func() io.Reader { return strings.NewReader("from strings") }, "from strings"},
		{"bytes.Reader", http.MethodPut, func() io.Reader { return bytes.NewReader([]byte("from bytes")) }, "from bytes"},
		{"bytes.Buffer", http.MethodPatch, func() io.Reader { return bytes.NewBufferString("from buffer") }, "from buffer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := newServer(t, refreshtest.Options{})
			e := newEngine(t, as, Config{})
			as.RevokeAccessTokens()
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req, err := http.NewRequest(tc.method, as.URL, body)
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
			if sent := resp.Request; tc.body == nil && (sent.Body != nil && sent.Body != http.NoBody || sent.ContentLength != 0) {
				t.Errorf("the retry of a request without a body carried one (ContentLength %d)", sent.ContentLength)
			}
			if n := as.Stats().TokenRequests; n != 1 {
				t.Errorf("refreshes = %d, want 1", n)
			}
			if n := as.Stats().Served401; n != 1 {
				t.Errorf("API 401s = %d, want 1", n)
			}
		})
	}
}

// TestReplayCustomGetBody pins that the retry takes its body from GetBody,
// called exactly once, and that both bodies are closed.
func TestReplayCustomGetBody(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()
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
	api := &apiStub{srv: as}
	resp, err := (&Transport{Engine: e, Base: api}).RoundTrip(req)
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
	if n := api.calls.Load(); n != 2 {
		t.Errorf("API calls = %d, want 2", n)
	}
}

// TestReplayNonReplayableBody pins that a 401 for a request whose body cannot
// be replayed is handed back untouched with a nil error, that the refresh
// happens anyway, and that the next request uses the new token without
// another refresh.
func TestReplayNonReplayableBody(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()
	tr := &Transport{Engine: e}

	req, err := http.NewRequest(http.MethodPost, as.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(strings.NewReader("x")) // GetBody stays nil
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: err = %v, want nil with the 401", err)
	}
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || got != revokedBody {
		t.Errorf("got %d %q, want 401 %q", resp.StatusCode, got, revokedBody)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, "invalid_token") {
		t.Errorf("WWW-Authenticate = %q, want the API's challenge", got)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.Stats().Served401; n != 1 {
		t.Errorf("API 401s = %d, want 1 (no retry)", n)
	}

	req, err = http.NewRequest(http.MethodPost, as.URL, strings.NewReader("next"))
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
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes after next request = %d, want 1", n)
	}
	if n := as.Stats().Served401; n != 1 {
		t.Errorf("API 401s after next request = %d, want 1", n)
	}
}

// TestReplayGetBodyError pins that when GetBody fails the 401 is returned
// intact with a nil error (after the one refresh).
func TestReplayGetBodyError(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	e := newEngine(t, as, Config{})
	as.RevokeAccessTokens()
	req, err := http.NewRequest(http.MethodPost, as.URL, strings.NewReader("x"))
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
	if got := trReadBody(t, resp); resp.StatusCode != http.StatusUnauthorized || got != revokedBody {
		t.Errorf("got %d %q, want 401 %q", resp.StatusCode, got, revokedBody)
	}
	if n := getBodies.Load(); n != 1 {
		t.Errorf("GetBody called %d times, want 1", n)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	if n := as.Stats().Served401; n != 1 {
		t.Errorf("API 401s = %d, want 1", n)
	}
}

// TestReplaySecond401 pins "retry at most once": if the API rejects the
// retried request too, that second 401 is returned, with one refresh in all,
// and the first 401's body is closed, not leaked.
func TestReplaySecond401(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
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
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// TestReplayRefreshFailureDiscards401 pins that when the refresh after a 401
// fails for a replayable request, the caller gets the refresh error (no
// response) and the 401's body is closed.
func TestReplayRefreshFailureDiscards401(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	store := new(MemoryStore)
	e := newEngine(t, as, Config{Store: store})
	store.Save(context.Background(), DefaultKey, &oauth2.Token{AccessToken: "at-stale", RefreshToken: "rt-bogus"})
	as.RevokeAccessTokens()
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
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}
