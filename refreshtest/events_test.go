package refreshtest_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
)

// recorder collects the events of a server.
type recorder struct {
	mu     sync.Mutex
	events []refreshtest.TokenEvent
}

func (r *recorder) add(ev refreshtest.TokenEvent) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// take returns the events so far and forgets them.
func (r *recorder) take() []refreshtest.TokenEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := r.events
	r.events = nil
	return evs
}

// brief is the part of an event the tests compare.
func brief(ev refreshtest.TokenEvent) string {
	s := fmt.Sprintf("%v %d/%d", ev.Kind, ev.Grant, ev.Pair)
	switch {
	case ev.Kind == refreshtest.TokenGranted && ev.NewGrant != ev.Grant: // a grant of its own
		s += fmt.Sprintf("→%d/%d", ev.NewGrant, ev.NewPair)
	case ev.NewPair != 0:
		s += fmt.Sprintf("→%d", ev.NewPair)
	}
	if ev.Code != "" {
		s += " " + ev.Code
	}
	if ev.Reuse {
		s += " reuse"
	}
	if ev.Revoked {
		s += " revoked"
	}
	if ev.Dropped {
		s += " dropped"
	}
	if ev.Kind == refreshtest.TokenFault || ev.Dropped {
		s += " " + ev.Fault.String()
	}
	return s
}

func briefs(evs []refreshtest.TokenEvent) string {
	var b []string
	for _, ev := range evs {
		b = append(b, brief(ev))
	}
	return strings.Join(b, "; ")
}

// TestTokenEvents: every token request is reported once, with the pair it
// presented, the pair it got, and what became of the grant.
func TestTokenEvents(t *testing.T) {
	var rec recorder
	clk := newClock()
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add, Now: clk.Now})
	tok := srv.Token()
	_, rt1 := mustRefresh(t, srv, tok.RefreshToken)
	_, rt2 := mustRefresh(t, srv, rt1)
	postRefresh(t, srv, rt1) // reuse: revokes grant 1
	postRefresh(t, srv, tok.RefreshToken)
	postRefresh(t, srv, rt2) // live, but its grant is revoked
	postRefresh(t, srv, "rt-9-9-unknown")
	bad := refreshForm(srv.Token().RefreshToken)
	bad.Set("client_secret", "wrong")
	do(t, nil, formRequest(t, srv, bad))

	want := "TokenGranted 1/0→1; TokenGranted 1/1→2; TokenReuse 1/1 invalid_grant reuse revoked; " +
		"TokenReuse 1/0 invalid_grant reuse; TokenRefused 1/2 invalid_grant; TokenRefused 0/0 invalid_grant; " +
		"TokenRefused 2/0 invalid_client"
	evs := rec.take()
	if got := briefs(evs); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if st := srv.Stats(); len(evs) != st.TokenRequests {
		t.Errorf("got %d events for %d token requests", len(evs), st.TokenRequests)
	}
	for _, ev := range evs {
		if !ev.Time.Equal(clk.Now()) {
			t.Errorf("%s: Time %v, want the server's clock %v", brief(ev), ev.Time, clk.Now())
		}
	}
}

// TestTokenEventsFaults: a fault that replaces the request is a TokenFault
// and leaves the refresh token live; one after the grant is a TokenGranted
// whose answer was dropped.
func TestTokenEventsFaults(t *testing.T) {
	var rec recorder
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add,
		Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultTooManyRequests}})
	tok := srv.Token()
	postRefresh(t, srv, tok.RefreshToken)
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultReset, AfterGrant: true})
	if resp, err := http.DefaultClient.Do(formRequest(t, srv, refreshForm(tok.RefreshToken))); err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want a connection error", resp.StatusCode)
	}
	srv.SetFaults(refreshtest.Faults{})
	postRefresh(t, srv, tok.RefreshToken)

	want := "TokenFault 1/0 FaultTooManyRequests; TokenGranted 1/0→1 dropped FaultReset; TokenReuse 1/0 invalid_grant reuse revoked"
	if got := briefs(rec.take()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestTokenEventsRotation: the new pair of RotateNever is the access
// token's, and a grace reuse that replays the first answer reports that
// answer's pair.
func TestTokenEventsRotation(t *testing.T) {
	var rec recorder
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add, Rotation: refreshtest.RotateNever})
	rt := srv.Token().RefreshToken
	mustRefresh(t, srv, rt)
	mustRefresh(t, srv, rt)
	if got, want := briefs(rec.take()), "TokenGranted 1/0→1; TokenGranted 1/0→2"; got != want {
		t.Errorf("RotateNever: got %s, want %s", got, want)
	}

	srv = newServer(t, refreshtest.Options{OnTokenRequest: rec.add, Rotation: refreshtest.RotateGrace})
	rt = srv.Token().RefreshToken
	mustRefresh(t, srv, rt)
	mustRefresh(t, srv, rt)
	if got, want := briefs(rec.take()), "TokenGranted 1/0→1; TokenGranted 1/0→1 reuse"; got != want {
		t.Errorf("RotateGrace: got %s, want %s", got, want)
	}
}

// TestTokenEventsHeaderAndReentry: the event carries the request's
// headers, holds no token value, and its callback may call the server.
func TestTokenEventsHeaderAndReentry(t *testing.T) {
	var srv *refreshtest.Server
	var rec recorder
	srv = newServer(t, refreshtest.Options{OnTokenRequest: func(ev refreshtest.TokenEvent) {
		srv.Stats() // takes the server's lock: must not deadlock
		rec.add(ev)
	}})
	tok := srv.Token()
	at, rt := mustRefresh(t, srv, tok.RefreshToken)
	do(t, nil, formRequest(t, srv, refreshForm(rt), func(r *http.Request) { r.Header.Set("Worker", "w7") }))
	evs := rec.take()
	if len(evs) != 2 || evs[1].Header.Get("Worker") != "w7" {
		t.Fatalf("got %+v, want 2 events, the second with header Worker: w7", evs)
	}
	for _, ev := range evs {
		s := fmt.Sprintf("%+v", ev)
		for _, v := range []string{tok.AccessToken, tok.RefreshToken, at, rt} {
			if strings.Contains(s, v) {
				t.Errorf("event %s holds a token value", s)
			}
		}
	}
}

// TestTokenEventsConcurrentLoser: the loser of two concurrent refreshes is
// refused with invalid_request. The winner is held in flight until the
// loser is answered, so that they overlap however slow the machine is.
func TestTokenEventsConcurrentLoser(t *testing.T) {
	t.Parallel()
	var rec recorder
	hold, release := holdGranted(t, rec.add)
	srv := newServer(t, refreshtest.Options{OnTokenRequest: hold, ConcurrentLoserInvalidRequest: true})
	rt := srv.Token().RefreshToken
	var wg sync.WaitGroup
	wg.Go(func() { postRefresh(t, srv, rt) })
	waitFor(t, "the first request arrived", func() bool { return srv.Stats().TokenRequests == 1 })
	postRefresh(t, srv, rt)
	release()
	wg.Wait()
	evs := rec.take()
	// Either may be decided first.
	slices.SortFunc(evs, func(a, b refreshtest.TokenEvent) int { return int(a.Kind) - int(b.Kind) })
	got := briefs(evs)
	if want := "TokenGranted 1/0→1; TokenRefused 1/0 invalid_request"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestTokenEventKindString(t *testing.T) {
	for k, want := range map[refreshtest.TokenEventKind]string{
		refreshtest.TokenGranted: "TokenGranted", refreshtest.TokenReuse: "TokenReuse",
		refreshtest.TokenRefused: "TokenRefused", refreshtest.TokenFault: "TokenFault", 0: "TokenEventKind(0)",
	} {
		if got := k.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
