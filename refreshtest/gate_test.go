package refreshtest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
)

// TestHold: a gate holds every token request that arrives, counted but not
// handled, until it is released; with ConcurrentLoserInvalidRequest a
// second request for the same refresh token, held too, is the loser.
func TestHold(t *testing.T) {
	srv := newServer(t, refreshtest.Options{ConcurrentLoserInvalidRequest: true})
	tok := srv.Token()
	g := srv.Hold()
	select {
	case <-g.Reached():
		t.Fatal("Reached is closed before any request arrived")
	default:
	}
	replies := make(chan reply, 2)
	go func() { replies <- postRefresh(t, srv, tok.RefreshToken) }()
	<-g.Reached()
	go func() { replies <- postRefresh(t, srv, tok.RefreshToken) }()
	waitFor(t, "the second request is held", func() bool { return g.Held() == 2 })
	if st := srv.Stats(); st.TokenRequests != 2 || st.Refreshes != 0 || st.InvalidRequest != 0 {
		t.Errorf("while held: got %+v, want 2 requests and nothing handled", st)
	}
	select {
	case r := <-replies:
		t.Fatalf("a held request was answered: %d %s", r.status, r.body)
	default:
	}
	g.Release()
	g.Release() // a second Release does nothing
	a, b := <-replies, <-replies
	if a.status != 200 {
		a, b = b, a
	}
	if a.status != 200 || b.code() != "invalid_request" {
		t.Errorf("got %d %s and %d %s, want one grant and one concurrent loser", a.status, a.body, b.status, b.body)
	}
	// After Release requests pass.
	mustRefresh(t, srv, a.str("refresh_token"))
	if g.Held() != 2 {
		t.Errorf("Held = %d after Release, want 2", g.Held())
	}
	if st := srv.Stats(); st.TokenRequests != 3 || st.Refreshes != 2 || st.ConcurrentLosers != 1 {
		t.Errorf("got %+v, want 3 requests, 2 refreshes, 1 loser", st)
	}
}

// TestHoldClientGivesUp: a request whose client gives up while it is held
// is still handled on release: the refresh token is spent, and the
// client's retry is a reuse.
func TestHoldClientGivesUp(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	g := srv.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req := formRequest(t, srv, refreshForm(tok.RefreshToken))
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-g.Reached()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled client: got an answer, want an error")
	}
	g.Release()
	waitFor(t, "the held request is handled", func() bool { return srv.Stats().Refreshes == 1 })
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("retry: got %d %s, want invalid_grant (a reuse)", r.status, r.body)
	}
	if st := srv.Stats(); st.Reuses != 1 {
		t.Errorf("got %+v, want 1 reuse", st)
	}
}

// TestHoldAgain: another Hold serves the requests that arrive after it;
// those held wait for the gate they reached.
func TestHoldAgain(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	one, two := srv.Token(), srv.Token()
	g1 := srv.Hold()
	first := make(chan reply, 1)
	go func() { first <- postRefresh(t, srv, one.RefreshToken) }()
	<-g1.Reached()
	g2 := srv.Hold()
	second := make(chan reply, 1)
	go func() { second <- postRefresh(t, srv, two.RefreshToken) }()
	<-g2.Reached()
	g2.Release()
	if r := <-second; r.status != 200 {
		t.Errorf("released by the second gate: got %d %s, want 200", r.status, r.body)
	}
	select {
	case r := <-first:
		t.Fatalf("the request at the first gate was answered: %d %s", r.status, r.body)
	default:
	}
	if g1.Held() != 1 || g2.Held() != 1 {
		t.Errorf("Held = %d and %d, want 1 and 1", g1.Held(), g2.Held())
	}
	g1.Release()
	if r := <-first; r.status != 200 {
		t.Errorf("released by the first gate: got %d %s, want 200", r.status, r.body)
	}
}

// TestHoldClose: Close abandons a held request unanswered.
func TestHoldClose(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	tok := srv.Token()
	g := srv.Hold()
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken)))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-g.Reached()
	srv.Close()
	if err := <-done; err == nil {
		t.Errorf("held request: got an answer after Close, want an error")
	}
	if st := srv.Stats(); st.Refreshes != 0 {
		t.Errorf("got %+v, want no refresh", st)
	}
}
