package refresh_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
	"golang.org/x/oauth2"
)

// recorder collects the events of an engine.
type recorder struct {
	mu     sync.Mutex
	events []refresh.Event
}

func (r *recorder) add(ev refresh.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// of returns the events of kind k delivered so far, after waiting for e's.
func (r *recorder) of(e *refresh.Engine, k refresh.EventKind) []refresh.Event {
	refresh.FlushEvents(e)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []refresh.Event
	for _, ev := range r.events {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// TestEventRefresh: a refresh flight after a 401 makes one event with the
// trigger, outcome, token request, fingerprints and every caller that
// waited for it.
func TestEventRefresh(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	gate := make(chan struct{})
	conf := srv.Config()
	endpoint := &refresh.FormEndpoint{TokenURL: conf.Endpoint.TokenURL, ClientID: conf.ClientID, ClientSecret: conf.ClientSecret,
		Auth: refresh.AuthInBody, AllowHTTP: true}
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add, Endpoint: refresh.EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		<-gate
		return endpoint.Refresh(ctx, tok)
	})})
	ctx := t.Context()
	first := srv.Token()
	if err := e.SetToken(ctx, "", first); err != nil {
		t.Fatal(err)
	}
	const callers = 5
	type ctxKey struct{}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if _, err := e.Refresh(context.WithValue(ctx, ctxKey{}, i), "", first); err != nil {
				t.Errorf("Refresh: %v", err)
			}
		})
	}
	refresh.WaitFor(t, "every caller waits for the flight", func() bool { return refresh.FlightCallers(e, refresh.DefaultKey) == callers })
	close(gate)
	wg.Wait()

	evs := rec.of(e, refresh.EventRefresh)
	if len(evs) != 1 {
		t.Fatalf("%d refresh events, want 1: %+v", len(evs), evs)
	}
	ev := evs[0]
	now, _ := e.Token(ctx, "")
	switch {
	case ev.Key != refresh.DefaultKey, ev.Trigger != refresh.TriggerRejected, ev.Outcome != refresh.OutcomeRefreshed, ev.Err != nil:
		t.Errorf("event %v %v %v %v %v; want default, rejected, refreshed, no error", ev.Key, ev.Kind, ev.Trigger, ev.Outcome, ev.Err)
	case ev.OldToken != refresh.Fingerprint(first.AccessToken) || ev.NewToken != refresh.Fingerprint(now.AccessToken):
		t.Errorf("fingerprints %q → %q; want %q → %q", ev.OldToken, ev.NewToken, refresh.Fingerprint(first.AccessToken), refresh.Fingerprint(now.AccessToken))
	case len(ev.Requests) != 1 || ev.Requests[0].Err != nil || ev.Requests[0].Duration <= 0:
		t.Errorf("requests %+v; want one that succeeded", ev.Requests)
	case len(ev.Callers) != callers:
		t.Errorf("%d callers; want %d", len(ev.Callers), callers)
	case ev.Duration < ev.Requests[0].Duration || ev.Start.IsZero():
		t.Errorf("duration %v, start %v: not around the token request's %v", ev.Duration, ev.Start, ev.Requests[0].Duration)
	case ev.Phases != refresh.PhaseStoreRead|refresh.PhaseSave:
		t.Errorf("phases %b; want a store read and a save, and no lock (the engine's own memory has none)", ev.Phases)
	}
	seen := map[any]bool{}
	for _, c := range ev.Callers {
		seen[c.Value(ctxKey{})] = true
	}
	if len(seen) != callers {
		t.Errorf("callers' contexts: %v; want the %d of the callers", seen, callers)
	}
	if got := ev.Kind.String() + " " + ev.Trigger.String() + " " + ev.Outcome.String(); got != "refresh rejected refreshed" {
		t.Errorf("names %q", got)
	}
}

// TestEventTemporary: a temporary failure is an event with the status of
// each attempt; while the key cools down, a refresh is a Repeated event
// that calls no endpoint.
func TestEventTemporary(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add, RefreshAttempts: 2, RefreshTimeout: 5 * time.Second})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	// Retry-After: the attempt is not repeated within the refresh
	// timeout, and the key cools down for a minute.
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultUnavailable, RetryAfter: time.Minute})
	for range 2 {
		if _, err := e.Refresh(ctx, "", nil); err == nil {
			t.Fatal("Refresh with the endpoint down: no error")
		}
	}
	evs := rec.of(e, refresh.EventRefresh)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2: %+v", len(evs), evs)
	}
	if ev := evs[0]; ev.Outcome != refresh.OutcomeTemporary || ev.Repeated || ev.StatusCode != http.StatusServiceUnavailable ||
		len(ev.Requests) != 1 || ev.Requests[0].StatusCode != http.StatusServiceUnavailable || ev.Requests[0].Err == nil {
		t.Errorf("first event %+v; want a temporary failure after one 503", ev)
	}
	if ev := evs[1]; ev.Outcome != refresh.OutcomeTemporary || !ev.Repeated || len(ev.Requests) != 0 {
		t.Errorf("second event %+v; want a Repeated temporary failure without a request", ev)
	}
	if got := srv.Stats().TokenRequests; got != 1 {
		t.Errorf("%d token requests; want 1", got)
	}
}

// TestEventSaveAndReauth: a failed save and a re-authentication are events
// (with the status and code of the refusal), and Stats counts the keys
// pending a save and awaiting re-authentication.
func TestEventSaveAndReauth(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	var faults storetest.Faults
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add, Store: faults.Wrap(new(refresh.LockingStore))})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError})
	if _, err := e.Refresh(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.of(e, refresh.EventSaveFailed)); n != 1 {
		t.Errorf("%d save-failed events; want 1", n)
	}
	if st := e.Stats(); st.PendingSaves != 1 {
		t.Errorf("Stats %+v; want 1 pending save", st)
	}
	refresh.WaitFor(t, "the background save", func() bool { return e.Stats().PendingSaves == 0 })

	srv.RevokeGrants()
	if _, err := e.Refresh(ctx, "", nil); !errors.Is(err, refresh.ErrReauthRequired) {
		t.Fatalf("after revoking the grant: %v; want ErrReauthRequired", err)
	}
	var reauth []refresh.Event
	for _, ev := range rec.of(e, refresh.EventRefresh) {
		if ev.Outcome == refresh.OutcomeReauthRequired {
			reauth = append(reauth, ev)
		}
	}
	if len(reauth) != 1 || reauth[0].Repeated || reauth[0].Code != "invalid_grant" || reauth[0].StatusCode != http.StatusBadRequest {
		t.Errorf("re-authentication events %+v; want one invalid_grant (400)", reauth)
	}
	if st := e.Stats(); st.Keys != 1 || st.ReauthRequired != 1 || st.PendingSaves != 0 {
		t.Errorf("Stats %+v; want 1 key awaiting re-authentication", st)
	}
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.ReauthRequired != 0 {
		t.Errorf("Stats after SetToken %+v; want none awaiting re-authentication", st)
	}
}

// TestEventResendAndAdopt: a request whose token was rejected is sent again
// (an EventResend); when the retry is rejected too, the store is read again
// (an EventAdopt) without a token-endpoint call.
func TestEventResendAndAdopt(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add})
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &refresh.Transport{Engine: e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
		return reply(r, http.StatusUnauthorized), nil
	})}}
	reqCtx := context.WithValue(ctx, struct{}{}, "request")
	status(client, reqCtx, srv.URL+"/api")
	resends := rec.of(e, refresh.EventResend)
	if len(resends) != 1 || resends[0].Context.Value(struct{}{}) != "request" || resends[0].StatusCode != http.StatusUnauthorized || resends[0].NewToken == resends[0].OldToken || resends[0].Outcome != refresh.OutcomeRefreshed {
		t.Errorf("resend events %+v; want one, with the request's context, a 401, a new token and OutcomeRefreshed", resends)
	}
	if adopts := rec.of(e, refresh.EventAdopt); len(adopts) != 1 || adopts[0].Outcome != refresh.OutcomeUnchanged || len(adopts[0].Requests) != 0 {
		t.Errorf("adopt events %+v; want one that found nothing newer and called no endpoint", adopts)
	}
}

// TestEventResendOfReplacedToken: a 401 for a token that another request's
// refresh had replaced already is resent with the current token, without a
// refresh, and its EventResend says so (OutcomeAdoptedMemory).
func TestEventResendOfReplacedToken(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add})
	ctx := t.Context()
	old := srv.Token()
	if err := e.SetToken(ctx, "", old); err != nil {
		t.Fatal(err)
	}
	slow, sent := make(chan struct{}), make(chan struct{})
	client := &http.Client{Transport: &refresh.Transport{Engine: e, Base: refresh.StubRT(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("Authorization") != "Bearer "+old.AccessToken {
			return reply(r, http.StatusOK), nil
		}
		if r.URL.Path == "/slow" {
			close(sent)
			<-slow // answers 401 after the other request's refresh
		}
		return reply(r, http.StatusUnauthorized), nil
	})}}
	done := make(chan int)
	go func() {
		code, _ := status(client, ctx, srv.URL+"/slow")
		done <- code
	}()
	<-sent
	if code, err := status(client, ctx, srv.URL+"/fast"); code != http.StatusOK {
		t.Fatalf("fast request: %d, %v; want 200 after one refresh", code, err)
	}
	close(slow)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("slow request: %d; want 200 with the token that replaced its own", code)
	}
	if n := srv.Stats().Refreshes; n != 1 {
		t.Errorf("%d refreshes; want 1", n)
	}
	var via []refresh.Outcome
	for _, ev := range rec.of(e, refresh.EventResend) {
		via = append(via, ev.Outcome)
	}
	if want := []refresh.Outcome{refresh.OutcomeRefreshed, refresh.OutcomeAdoptedMemory}; !slices.Equal(via, want) {
		t.Errorf("resends came from %v; want %v", via, want)
	}
}

// TestOnEventNeverStalls: an OnEvent that blocks or panics neither stalls
// nor breaks refreshes; the events beyond the queue are counted as dropped.
func TestOnEventNeverStalls(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	release := make(chan struct{})
	var once sync.Once
	e := newEng(t, srv, refresh.Config{OnEvent: func(ev refresh.Event) {
		once.Do(func() { <-release })
		panic("boom")
	}})
	defer close(release)
	ctx := t.Context()
	if err := e.SetToken(ctx, "", srv.Token()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := e.Refresh(ctx, "", nil); err != nil {
			t.Fatalf("Refresh with OnEvent blocked: %v", err)
		}
	}
	noReuse(t, srv)
}

// storeReporter is a store that reports an event from every Load.
type storeReporter struct{ refresh.MemoryStore }

func (s *storeReporter) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	refresh.ReportStoreEvent(ctx, refresh.StoreEvent{Op: "load", What: "lease lost"})
	return s.MemoryStore.Load(ctx, key)
}

// TestReportStoreEvent: what a store reports through the context of a call
// becomes an EventStore event of the key.
func TestReportStoreEvent(t *testing.T) {
	srv := newStrict(t, refreshtest.Options{})
	var rec recorder
	e := newEng(t, srv, refresh.Config{OnEvent: rec.add, Store: new(storeReporter)})
	refresh.ReportStoreEvent(context.Background(), refresh.StoreEvent{Op: "x"}) // not from an engine: nothing
	if _, err := e.Token(t.Context(), "alice"); err == nil {
		t.Fatal("Token of a key with no token: no error")
	}
	evs := rec.of(e, refresh.EventStore)
	if len(evs) != 1 || evs[0].Key != "alice" || evs[0].Store.Op != "load" || evs[0].Store.What != "lease lost" {
		t.Errorf("store events %+v; want alice's lease lost", evs)
	}
}
