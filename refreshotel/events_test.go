package refreshotel_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/refreshotel"
	"github.com/oauthkit/refresh/sealed"
	"github.com/oauthkit/refresh/storetest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
)

// instrumented is a Telemetry over the SDK's manual reader and in-memory
// span exporter, and the OnEvent of a configuration it instrumented.
type instrumented struct {
	run
	tel     *refreshotel.Telemetry
	onEvent func(refresh.Event)
}

func newInstrumented(t *testing.T, store refresh.TokenStore) *instrumented {
	in := &instrumented{run: run{t: t, reader: sdkmetric.NewManualReader(), spans: tracetest.NewInMemoryExporter()}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(in.spans))
	in.tracer = tp.Tracer("test")
	var err error
	in.tel, err = refreshotel.New(refreshotel.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(in.reader)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.tel.Close() })
	c := refresh.Config{Store: store}
	in.tel.Instrument(&c)
	in.onEvent = c.OnEvent
	return in
}

// span starts and ends a span standing for a caller's request.
func (in *instrumented) span(name string) (context.Context, trace.SpanContext) {
	ctx, s := in.tracer.Start(context.Background(), name)
	s.End()
	return ctx, s.SpanContext()
}

// TestSpanLayout: a flight's phases are laid out in the order the flight
// runs them, with their measured durations and the token requests' own
// starts, inside the flight's span, which is a child of the first caller's
// span and linked to the others'.
func TestSpanLayout(t *testing.T) {
	in := newInstrumented(t, nil)
	first, firstSC := in.span("first")
	second, secondSC := in.span("second")
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	// Only the engine makes a temporary *refresh.Error; this one counts as "failed".
	unavailable := &refresh.Error{StatusCode: http.StatusServiceUnavailable, Code: "temporarily_unavailable"}
	in.onEvent(refresh.Event{
		Kind: refresh.EventRefresh, Key: key, Trigger: refresh.TriggerExpired, Outcome: refresh.OutcomeRefreshed,
		Start: t0, Duration: ms(300), LockWait: ms(10), StoreRead: ms(5), Save: ms(7),
		Phases: refresh.PhaseLock | refresh.PhaseStoreRead | refresh.PhaseSave,
		Requests: []refresh.TokenRequest{
			{Start: t0.Add(ms(20)), Duration: ms(100), StatusCode: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Err: unavailable},
			{Start: t0.Add(ms(150)), Duration: ms(50)},
		},
		Callers: []context.Context{first, second, context.Background()},
	})
	spans := in.spans.GetSpans()
	var flight tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "oauth2.refresh" {
			flight = s
		}
	}
	if flight.Parent.SpanID() != firstSC.SpanID() || len(flight.Links) != 1 || flight.Links[0].SpanContext.SpanID() != secondSC.SpanID() {
		t.Fatalf("flight span: parent %v, links %v; want the first caller's span as parent, the second's as the one link", flight.Parent.SpanID(), flight.Links)
	}
	if !flight.StartTime.Equal(t0) || !flight.EndTime.Equal(t0.Add(ms(300))) {
		t.Errorf("flight [%v, %v]; want [%v, +300ms]", flight.StartTime, flight.EndTime, t0)
	}
	type window struct {
		name       string
		start, end int // ms after t0
		status     string
	}
	var got []window
	for _, s := range spans {
		if s.Parent.SpanID() == flight.SpanContext.SpanID() {
			got = append(got, window{s.Name, int(s.StartTime.Sub(t0) / time.Millisecond), int(s.EndTime.Sub(t0) / time.Millisecond), s.Status.Code.String()})
		}
	}
	want := []window{
		{"oauth2.lock", 0, 10, "Unset"},
		{"oauth2.store.read", 10, 15, "Unset"},
		{"oauth2.token_request", 20, 120, "Error"},
		{"oauth2.token_request", 150, 200, "Unset"},
		{"oauth2.save", 200, 207, "Unset"},
	}
	if len(got) != len(want) {
		t.Fatalf("phases %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("phase %d: %+v; want %+v", i, got[i], want[i])
		}
	}
	diff(t, "metrics", in.metrics(), withGauges(map[string]int64{
		"oauth2.client.refresh.duration{oauth2.refresh.outcome=refreshed,oauth2.refresh.trigger=expired}":                                 1,
		"oauth2.client.refresh.joined{oauth2.refresh.trigger=expired}":                                                                    2,
		"oauth2.client.token_request.duration{error.type=failed,http.response.status_code=503,oauth2.error.code=temporarily_unavailable}": 1,
		"oauth2.client.token_request.duration{}":                                                                                          1,
		"oauth2.client.lock.wait{oauth2.store.kind=memory}":                                                                               1,
	}))
}

// TestEarlyRefreshSpan: an early refresh is started by no caller, so its
// span begins a trace of its own, every caller is a link, and every caller
// counts as joined.
func TestEarlyRefreshSpan(t *testing.T) {
	in := newInstrumented(t, nil)
	first, firstSC := in.span("first")
	second, secondSC := in.span("second")
	in.onEvent(refresh.Event{Kind: refresh.EventRefresh, Key: key, Trigger: refresh.TriggerDue, Outcome: refresh.OutcomeRefreshed,
		Start: time.Now(), Callers: []context.Context{first, second}})
	for _, s := range in.spans.GetSpans() {
		if s.Name != "oauth2.refresh" {
			continue
		}
		if s.Parent.IsValid() || len(s.Links) != 2 || s.Links[0].SpanContext.SpanID() != firstSC.SpanID() || s.Links[1].SpanContext.SpanID() != secondSC.SpanID() {
			t.Errorf("early refresh span: parent %v, links %v; want no parent and both callers as links", s.Parent.SpanID(), s.Links)
		}
	}
	diff(t, "metrics", in.metrics(), withGauges(map[string]int64{
		"oauth2.client.refresh.duration{oauth2.refresh.outcome=refreshed,oauth2.refresh.trigger=due}": 1,
		"oauth2.client.refresh.joined{oauth2.refresh.trigger=due}":                                    2,
	}))
}

// TestBoundedAttributes: what a server or a store may choose (an OAuth
// error code, a store operation, what a store reports) reaches no
// attribute unless it is one of a known few; nothing names the key.
func TestBoundedAttributes(t *testing.T) {
	in := newInstrumented(t, nil)
	hostile := "x_" + strings.Repeat("a", 40) + "_" + key
	for i := range 3 {
		code := hostile + string(rune('a'+i))
		in.onEvent(refresh.Event{Kind: refresh.EventRefresh, Key: key, Trigger: refresh.TriggerExpired, Outcome: refresh.OutcomeFailed,
			Err: &refresh.Error{StatusCode: 400, Code: code}, Code: code,
			Requests: []refresh.TokenRequest{{StatusCode: 400, Code: code, Err: &refresh.Error{StatusCode: 400, Code: code}}}})
		in.onEvent(refresh.Event{Kind: refresh.EventStore, Key: key, Store: refresh.StoreEvent{Op: code, What: "lease lost"}})
		in.onEvent(refresh.Event{Kind: refresh.EventStore, Key: key, Store: refresh.StoreEvent{Op: "lock", What: code}})
	}
	points := in.metrics()
	diff(t, "metrics", points, withGauges(map[string]int64{
		"oauth2.client.refresh.duration{oauth2.refresh.outcome=failed,oauth2.refresh.trigger=expired}":                   3,
		"oauth2.client.token_request.duration{error.type=failed,http.response.status_code=400,oauth2.error.code=_OTHER}": 3,
		"oauth2.client.lease.lost{oauth2.store.kind=memory,oauth2.store.operation=_OTHER}":                               3,
	}))
	noSecrets(t, in.spans.GetSpans(), points, []string{key, "x_aaaa"})
}

// TestAdoptResendPause: an adoption is a span with its phases and a lock
// wait; a resend and a pause are counted and shown on the request's span.
func TestAdoptResendPause(t *testing.T) {
	in := newInstrumented(t, nil)
	req, reqSC := in.span("request")
	now := time.Now()
	in.onEvent(refresh.Event{Kind: refresh.EventAdopt, Key: key, Trigger: refresh.TriggerRejected, Outcome: refresh.OutcomeAdoptedStore,
		Start: now, Duration: time.Millisecond, Phases: refresh.PhaseLock | refresh.PhaseStoreRead, Callers: []context.Context{req}})
	in.onEvent(refresh.Event{Kind: refresh.EventResend, Key: key, Trigger: refresh.TriggerRejected, Outcome: refresh.OutcomeAdoptedMemory,
		Start: now, StatusCode: http.StatusUnauthorized, Context: req, OldToken: "fp-old", NewToken: "fp-new"})
	in.onEvent(refresh.Event{Kind: refresh.EventPaused, Key: key, Trigger: refresh.TriggerRejected, Start: now, StatusCode: http.StatusUnauthorized, Context: req, Pause: time.Minute})
	in.onEvent(refresh.Event{Kind: refresh.EventPaused, Key: key, Trigger: refresh.TriggerRejected, Start: now, StatusCode: http.StatusForbidden}) // no request span
	diff(t, "metrics", in.metrics(), withGauges(map[string]int64{
		"oauth2.client.lock.wait{oauth2.store.kind=memory}":                                  1,
		"oauth2.client.resends{http.response.status_code=401,oauth2.resend.reason=replaced}": 1,
		"oauth2.client.paused{http.response.status_code=401}":                                1,
		"oauth2.client.paused{http.response.status_code=403}":                                1,
	}))
	names := map[string]int{}
	for _, s := range in.spans.GetSpans() {
		switch s.Name {
		case "oauth2.adopt", "oauth2.resend", "oauth2.paused":
			if s.Parent.SpanID() != reqSC.SpanID() {
				t.Errorf("%s: parent %v; want the request's span", s.Name, s.Parent.SpanID())
			}
		}
		if s.Name == "oauth2.resend" && (attrOf(s.Attributes, "oauth2.token.old") != "fp-old" || attrOf(s.Attributes, "oauth2.token.new") != "fp-new") {
			t.Errorf("resend span attributes %v; want the tokens' fingerprints", s.Attributes)
		}
		names[s.Name]++
	}
	if names["oauth2.adopt"] != 1 || names["oauth2.lock"] != 1 || names["oauth2.store.read"] != 1 || names["oauth2.resend"] != 1 || names["oauth2.paused"] != 1 {
		t.Errorf("spans %v; want one adopt with a lock and a store read, one resend, one pause", names)
	}
}

// TestGaugesSumEngines: the gauges report the sum over the engines
// observed, and nothing after Close; OnEvent of the configuration is still
// called after the recording.
func TestGaugesSumEngines(t *testing.T) {
	in := newInstrumented(t, nil)
	theirs := make(chan refresh.Event, 16)
	for range 2 {
		e, err := in.tel.NewEngine(refresh.Config{
			Endpoint: refresh.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, errors.New("unused") }),
			OnEvent:  func(ev refresh.Event) { theirs <- ev },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(context.Background())
		for _, k := range []string{"a", "b"} {
			if err := e.SetToken(context.Background(), k, &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.Refresh(context.Background(), "a", nil); err == nil {
			t.Fatal("Refresh with an endpoint that fails: no error")
		}
		if ev := <-theirs; ev.Kind != refresh.EventRefresh { // after the recording
			t.Errorf("the configuration's OnEvent got %v; want the refresh", ev.Kind)
		}
	}
	got := in.metrics()
	if got["oauth2.client.keys{}"] != 4 || got["oauth2.client.refresh.duration{oauth2.refresh.outcome=failed,oauth2.refresh.trigger=rejected}"] != 2 {
		t.Errorf("keys gauge %d, %v; want 4 keys, 2 failed refreshes", got["oauth2.client.keys{}"], got)
	}
	if err := in.tel.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := in.metrics()["oauth2.client.keys{}"]; ok {
		t.Error("keys gauge reported after Close")
	}
}

// TestStoreKind names the module's stores, through their wrappers.
func TestStoreKind(t *testing.T) {
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sl, err := sealed.New(fs, sealed.Key{ID: "k1", Secret: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	ll, err := refresh.NewLeaseLocker(new(refresh.MemoryStore), refresh.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		store refresh.TokenStore
		want  string
	}{
		{nil, "memory"},
		{new(refresh.MemoryStore), "MemoryStore"},
		{ll, "LeaseLocker"},
		{fs, "filestore"},
		{sl, "sealed"},
		{new(storetest.Faults).Wrap(fs), "storetest"},
		{&leaseReporter{}, "refreshotel_test"},
	} {
		if got := refreshotel.StoreKind(c.store); got != c.want {
			t.Errorf("StoreKind(%T) = %q; want %q", c.store, got, c.want)
		}
	}
}

// withGauges adds to want the gauges of no engine: zero.
func withGauges(want map[string]int64) map[string]int64 {
	for _, g := range []string{"oauth2.client.keys{}", "oauth2.client.keys.reauth_required{}", "oauth2.client.keys.save_pending{}", "oauth2.client.events.dropped{}"} {
		want[g] = 0
	}
	return want
}
