package refresh_test

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// TestNoHammering: an API that rejects every token (a wrong audience, a
// misconfigured gateway) does not turn each request into a refresh. Before
// the pause, 100 requests made 100 refreshes and 200 API calls.
func TestNoHammering(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var paused atomic.Int64
	e := newEng(t, srv, refresh.Config{OnEvent: func(ev refresh.Event) {
		if ev.Kind == refresh.EventPaused && errors.Is(ev.Err, refresh.ErrRefreshPaused) && ev.StatusCode == http.StatusUnauthorized {
			paused.Add(1)
		}
	}})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	var reject atomic.Bool // the API rejects every token
	reject.Store(true)
	var apiCalls atomic.Int64
	client := &http.Client{Transport: &refresh.Transport{Engine: e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
		apiCalls.Add(1)
		if reject.Load() {
			return reply(r, http.StatusUnauthorized), nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})}}

	const requests = 100
	for i := range requests {
		code, err := status(client, ctx, srv.URL+"/api")
		if err != nil || code != http.StatusUnauthorized {
			t.Fatalf("request %d: %d, %v; want the API's 401 handed back", i, code, err)
		}
	}
	st := srv.Stats()
	t.Logf("%d requests against an API that rejects every token: %d refreshes, %d API calls", requests, st.Refreshes, apiCalls.Load())
	if st.Refreshes > 5 {
		t.Errorf("%d refreshes for %d requests; want at most 5", st.Refreshes, requests)
	}
	if st.Refreshes < 2 {
		t.Errorf("%d refreshes; want at least 2 (one refresh is always tried)", st.Refreshes)
	}
	noReuse(t, srv)
	refresh.FlushEvents(e)
	if paused.Load() == 0 {
		t.Error("no EventPaused event for the rejections handed back")
	}
	tok, err := e.Token(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Refresh(ctx, "", tok); !errors.Is(err, refresh.ErrRefreshPaused) {
		t.Errorf("Refresh of a rejected fresh token while paused: %v; want ErrRefreshPaused", err)
	}

	// The API recovers: the current token works, and the pause ends with
	// the first request it accepts. A token revoked after that is
	// refreshed at once.
	reject.Store(false)
	if code, err := status(client, ctx, srv.URL+"/api"); err != nil || code != http.StatusOK {
		t.Fatalf("after the API recovered: %d, %v; want 200", code, err)
	}
	before := srv.Stats().Refreshes
	srv.RevokeAccessTokens()
	if code, err := status(client, ctx, srv.URL+"/api"); err != nil || code != http.StatusOK {
		t.Fatalf("after a revocation: %d, %v; want 200 after a refresh", code, err)
	}
	if got := srv.Stats().Refreshes - before; got != 1 {
		t.Errorf("revoked token after the pause ended: %d refreshes; want 1", got)
	}
	noReuse(t, srv)
}

// TestPauseEndsOnSetToken: a login ends the pause.
func TestPauseEndsOnSetToken(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	e := newEng(t, srv, refresh.Config{})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &refresh.Transport{Engine: e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
		return reply(r, http.StatusUnauthorized), nil
	})}}
	for range 3 {
		status(client, ctx, srv.URL+"/api")
	}
	tok, _ := e.Token(ctx, "")
	if _, err := e.Refresh(ctx, "", tok); !errors.Is(err, refresh.ErrRefreshPaused) {
		t.Fatalf("Refresh while paused: %v; want ErrRefreshPaused", err)
	}
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	before := srv.Stats().Refreshes
	tok, _ = e.Token(ctx, "")
	if _, err := e.Refresh(ctx, "", tok); err != nil {
		t.Errorf("Refresh after SetToken: %v; want a refresh", err)
	}
	if got := srv.Stats().Refreshes - before; got != 1 {
		t.Errorf("%d refreshes after SetToken; want 1", got)
	}
	noReuse(t, srv)
}
