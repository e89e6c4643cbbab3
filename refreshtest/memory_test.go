package refreshtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// countingBody records Close calls.
type countingBody struct {
	io.Reader
	closes int
}

func (b *countingBody) Close() error { b.closes++; return nil }

// TestTransport: both hosts answer in memory exactly as over the network,
// into the same Stats; the request body is closed; other hosts fail.
func TestTransport(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	c := &http.Client{Transport: srv.Transport()}
	tok := srv.Token()

	body := &countingBody{Reader: strings.NewReader(`{"name":"x"}`)}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/items", body)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	r := do(t, c, req)
	if r.status != 200 || r.body != `{"name":"x"}` || r.header.Get(refreshtest.GrantHeader) != "1" {
		t.Errorf("API: got %d %q grant %q, want 200, the body echoed, grant 1", r.status, r.body, r.header.Get(refreshtest.GrantHeader))
	}
	if body.closes != 1 {
		t.Errorf("request body closed %d times, want 1", body.closes)
	}
	if r := do(t, c, formRequest(t, srv, refreshForm(tok.RefreshToken))); r.status != 200 || !strings.HasPrefix(r.str("refresh_token"), "rt-1-1-") {
		t.Errorf("token endpoint: got %d %s, want 200 and a new pair", r.status, r.body)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	if r := do(t, c, req); r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="refreshtest"` {
		t.Errorf("no token: got %d %q, want 401 with a challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
	req, _ = http.NewRequest(http.MethodHead, srv.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if r := do(t, c, req); r.status != 200 || r.body != "" {
		t.Errorf("HEAD: got %d %q, want 200 and no body", r.status, r.body)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 1, Refreshes: 1, Rotations: 1, APIRequests: 3, Served200: 2, Served401: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	for _, u := range []string{"http://elsewhere.test/x", strings.Replace(srv.URL, "http:", "https:", 1) + "/x"} {
		body := &countingBody{Reader: strings.NewReader("x")}
		req, _ := http.NewRequest(http.MethodPost, u, body)
		if resp, err := srv.Transport().RoundTrip(req); err == nil {
			resp.Body.Close()
			t.Errorf("%s: got %d, want an error", u, resp.StatusCode)
		}
		if body.closes != 1 {
			t.Errorf("%s: request body closed %d times, want 1", u, body.closes)
		}
	}
}

// TestTransportFaults: the faults that need a connection behave as on one.
func TestTransportFaults(t *testing.T) {
	t.Parallel()
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	send := func(c *http.Client) (*http.Response, error) {
		return c.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
	}
	c := &http.Client{Transport: srv.Transport(), Timeout: 200 * time.Millisecond}

	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultReset})
	if resp, err := send(c); !errors.Is(err, syscall.ECONNRESET) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("FaultReset: got %v, want a connection reset", err)
	}

	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHang})
	if resp, err := send(c); err == nil || !isTimeout(err) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("FaultHang: got %v, want the client's timeout", err)
	}

	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultSlowBody})
	resp, err := send(c)
	if err != nil {
		t.Fatalf("FaultSlowBody: got %v, want the header at once", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !isTimeout(err) || strings.TrimSpace(string(b)) != "" {
		t.Errorf("FaultSlowBody: got %d, %q, %v; want 200, spaces, then the client's timeout", resp.StatusCode, b, err)
	}

	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultHugeBody})
	if r := do(t, &http.Client{Transport: srv.Transport()}, formRequest(t, srv, refreshForm(tok.RefreshToken))); r.status != 502 || len(r.body) != 2<<20 {
		t.Errorf("FaultHugeBody: got %d and %d bytes, want 502 and 2 MiB", r.status, len(r.body))
	}
	// A client that stops reading does not block the handler.
	resp, err = send(&http.Client{Transport: srv.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	io.CopyN(io.Discard, resp.Body, 1024)
	resp.Body.Close()

	if st := srv.Stats(); st.Faults != 5 || st.Refreshes != 0 {
		t.Errorf("got %+v, want 5 faults, no refresh", st)
	}
}

// TestTransportClose: Close abandons a request held in memory.
func TestTransportClose(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	tok := srv.Token()
	g := srv.Hold()
	done := make(chan error, 1)
	go func() {
		resp, err := (&http.Client{Transport: srv.Transport()}).Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-g.Reached()
	srv.Close()
	if err := <-done; !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("got %v, want a connection reset", err)
	}
}

// TestTransportSynctest: in a testing/synctest bubble the server's clock is
// the bubble's, and the refresh library refreshes an expired token over
// Transport without any real time passing.
func TestTransportSynctest(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour}) // outside the bubble: it listens
	synctest.Test(t, func(t *testing.T) {
		hc := &http.Client{Transport: srv.Transport()}
		e, err := refresh.New(refresh.Config{OAuth2: srv.Config(), HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		if err := e.SetToken(t.Context(), "", srv.Token()); err != nil {
			t.Fatal(err)
		}
		c := e.Client(hc)
		for range 3 {
			time.Sleep(2 * time.Hour) // the token has expired on both clocks
			resp, err := c.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("got %d, want 200", resp.StatusCode)
			}
		}
	})
	if st := srv.Stats(); st.Refreshes != 3 || st.Served401 != 0 || st.Reuses != 0 {
		t.Errorf("got %+v, want 3 refreshes before expiry, no 401, no reuse", st)
	}
}
