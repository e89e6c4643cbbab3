package refreshtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

func TestFaultStatus(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, RetryAfter: 1500 * time.Millisecond}})
	tok := srv.Token()
	r := postRefresh(t, srv, tok.RefreshToken)
	if r.status != 503 || r.header.Get("Retry-After") != "2" {
		t.Errorf("FaultUnavailable: got %d, Retry-After %q, want 503 and 2", r.status, r.header.Get("Retry-After"))
	}
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultTooManyRequests, RetryAfter: 3 * time.Second})
	r = postRefresh(t, srv, tok.RefreshToken)
	if r.status != 429 || r.header.Get("Retry-After") != "3" {
		t.Errorf("FaultTooManyRequests: got %d, Retry-After %q, want 429 and 3", r.status, r.header.Get("Retry-After"))
	}
	srv.SetFaults(refreshtest.Faults{Rate: 1})
	if r := postRefresh(t, srv, tok.RefreshToken); r.status != 503 || r.header.Get("Retry-After") != "" {
		t.Errorf("without RetryAfter: got %d, Retry-After %q, want 503 and none", r.status, r.header.Get("Retry-After"))
	}
	// Failed requests were not handled: the refresh token is still live.
	srv.SetFaults(refreshtest.Faults{})
	mustRefresh(t, srv, tok.RefreshToken)
	want := refreshtest.Stats{Grants: 1, TokenRequests: 4, Faults: 3, Refreshes: 1, Rotations: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFaultRate(t *testing.T) {
	for _, tc := range []struct {
		rate float64
		want string // per request: x fails, . succeeds
	}{
		{0, "......"},
		{1, "xxxxxx"},
		{0.5, "x.x.x."},
		{0.25, "x...x..."},
		{1.0 / 3, "x..x..x.."},
	} {
		srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateNever})
		rt := srv.Token().RefreshToken
		// A first run, then SetFaults starts the count again.
		for range 2 {
			srv.SetFaults(refreshtest.Faults{Rate: tc.rate})
			var got strings.Builder
			for range tc.want {
				if postRefresh(t, srv, rt).status == 200 {
					got.WriteByte('.')
				} else {
					got.WriteByte('x')
				}
			}
			if got.String() != tc.want {
				t.Errorf("Rate %v: got %s, want %s", tc.rate, got.String(), tc.want)
			}
		}
		if got, fails := srv.Stats(), 2*strings.Count(tc.want, "x"); got.Faults != fails || got.Refreshes != 2*len(tc.want)-fails {
			t.Errorf("Rate %v: got %+v, want %d faults", tc.rate, got, fails)
		}
	}
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	const latency = 100 * time.Millisecond
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Latency: latency}})
	tok := srv.Token()
	start := time.Now()
	mustRefresh(t, srv, tok.RefreshToken)
	if d := time.Since(start); d < latency {
		t.Errorf("got an answer after %v, want at least %v", d, latency)
	}
	// Latency is for the token endpoint only.
	srv.SetFaults(refreshtest.Faults{Latency: time.Hour})
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if r := do(t, &http.Client{Timeout: 10 * time.Second}, req); r.status != 200 {
		t.Errorf("API: got %d, want 200", r.status)
	}
}

// TestFaultLatencyClientGivesUp: a client that gives up during the latency
// does not stop the refresh; its refresh token is spent. The answer is also
// held until the client has given up, so that a client whose timer fires
// late on a loaded machine still never sees it.
func TestFaultLatencyClientGivesUp(t *testing.T) {
	t.Parallel()
	hold, release := holdGranted(t, nil)
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Latency: 100 * time.Millisecond}, OnTokenRequest: hold})
	tok := srv.Token()
	c := &http.Client{Timeout: 30 * time.Millisecond}
	_, err := c.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
	release()
	if err == nil {
		t.Fatalf("got an answer, want a client timeout")
	}
	waitFor(t, "the refresh was granted", func() bool { return srv.Stats().Refreshes == 1 })
	srv.SetFaults(refreshtest.Faults{})
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("after the abandoned refresh: got %d %s, want invalid_grant (a reuse)", r.status, r.body)
	}
}

func TestFaultReset(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultReset}})
	tok := srv.Token()
	if resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken))); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a connection error", resp.StatusCode)
	}
	srv.SetFaults(refreshtest.Faults{})
	mustRefresh(t, srv, tok.RefreshToken) // not spent
	if got := srv.Stats(); got.TokenRequests != 2 || got.Faults != 1 || got.Refreshes != 1 {
		t.Errorf("got %+v, want 2 requests, 1 fault, 1 refresh", got)
	}
}

// TestFaultAfterGrant: the refresh happens, its answer is lost, and the
// client's retry with the same refresh token is a reuse.
func TestFaultAfterGrant(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultReset, AfterGrant: true}})
	tok := srv.Token()
	if resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken))); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a connection error", resp.StatusCode)
	}
	srv.SetFaults(refreshtest.Faults{})
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("retry: got %d %s, want invalid_grant", r.status, r.body)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 2, Faults: 1, Refreshes: 1, Rotations: 1, Reuses: 1, FamiliesRevoked: 1, InvalidGrant: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	// An error refused after handling is counted, and the fault still
	// replaces it.
	srv.SetFaults(refreshtest.Faults{Rate: 1, AfterGrant: true})
	if r := postRefresh(t, srv, "rt-unknown"); r.status != 503 {
		t.Errorf("refused, then failed: got %d, want 503", r.status)
	}
	if got := srv.Stats(); got.InvalidGrant != 2 || got.Faults != 2 {
		t.Errorf("got %+v, want 2 invalid_grant, 2 faults", got)
	}
}

func TestFaultHang(t *testing.T) {
	t.Parallel()
	srv := refreshtest.NewServer(refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHang}})
	tok := srv.Token()

	c := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := c.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
	if err == nil || !isTimeout(err) {
		t.Errorf("got %v, want a client timeout", err)
	}

	// A request without a timeout hangs until Close, which does not wait
	// for it.
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the second request arrived", func() bool { return srv.Stats().TokenRequests == 2 })
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second): // a watchdog, not a measure
		t.Fatal("Close blocked on a hanging request")
	}
	if err := <-done; err == nil {
		t.Errorf("hanging request: got an answer after Close, want an error")
	}
	if got := srv.Stats(); got.Faults != 2 || got.Refreshes != 0 {
		t.Errorf("got %+v, want 2 faults and no refresh", got)
	}
}

func TestFaultHTML(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHTML}})
	r := postRefresh(t, srv, srv.Token().RefreshToken)
	if r.status != 502 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, "<html>") {
		t.Errorf("got %d %q %q, want 502 and an HTML page", r.status, r.header.Get("Content-Type"), r.body)
	}
}

func TestFaultHugeBody(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHugeBody}})
	tok := srv.Token()
	r := postRefresh(t, srv, tok.RefreshToken)
	if r.status != 502 || len(r.body) != 2<<20 {
		t.Errorf("got %d and %d bytes, want 502 and 2 MiB", r.status, len(r.body))
	}
	// A client that stops reading after 1 MiB does not block the server.
	resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if n != 1<<20 {
		t.Errorf("read %d bytes, want 1 MiB", n)
	}
}

// TestFaultSlowBody: the headers come at once, then a body of spaces that
// goes on until the client gives up (here by cancelling, which is what a
// client's timeout does) or the server is closed, and then ends in an error,
// not EOF; the refresh token is not spent. The test reads a number of bytes
// and gives up when it chooses, not on a timer, so that how fast the machine
// runs cannot change what it sees.
func TestFaultSlowBody(t *testing.T) {
	t.Parallel()
	const spaces = 3 // bytes read before giving up: the body goes on
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultSlowBody}})
	tok := srv.Token()

	// slowBody sends a refresh request with ctx, checks its headers and
	// first bytes, and returns the body to read on.
	slowBody := func(ctx context.Context) io.ReadCloser {
		t.Helper()
		resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)).WithContext(ctx))
		if err != nil {
			t.Fatalf("got %v, want the headers", err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("got %d %q, want 200 and a JSON content type", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		b := make([]byte, spaces)
		if _, err := io.ReadFull(resp.Body, b); err != nil || string(b) != strings.Repeat(" ", spaces) {
			t.Fatalf("first %d bytes: got %q, %v; want spaces", spaces, b, err)
		}
		return resp.Body
	}

	// The client gives up.
	ctx, cancel := context.WithCancel(context.Background())
	body := slowBody(ctx)
	cancel()
	rest, err := io.ReadAll(body)
	body.Close()
	if !errors.Is(err, context.Canceled) || strings.TrimSpace(string(rest)) != "" {
		t.Errorf("after cancelling: got %q, %v; want more spaces at most, then context.Canceled", rest, err)
	}
	// The request was not handled: the refresh token is still live.
	srv.SetFaults(refreshtest.Faults{})
	_, rt := mustRefresh(t, srv, tok.RefreshToken)

	// The server is closed.
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultSlowBody})
	tok.RefreshToken = rt
	body = slowBody(context.Background())
	srv.Close()
	rest, err = io.ReadAll(body)
	body.Close()
	if err == nil || strings.TrimSpace(string(rest)) != "" {
		t.Errorf("after Close: got %q, %v; want more spaces at most, then an error (not a clean end)", rest, err)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 3, Faults: 2, Refreshes: 1, Rotations: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
