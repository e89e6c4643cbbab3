package refreshotel_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshotel"
	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
)

// key is the one key of the scripted run: a user's identity, which no
// attribute may carry.
const key = "alice@example.com"

// gate holds the calls of a RoundTripper while it is closed.
type gate struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	hold chan struct{} // nil: open
}

func (g *gate) close() {
	g.mu.Lock()
	g.hold = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) open() {
	g.mu.Lock()
	close(g.hold)
	g.hold = nil
	g.mu.Unlock()
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	h := g.hold
	g.mu.Unlock()
	if h != nil {
		<-h
	}
	return g.rt.RoundTrip(r)
}

// leaseReporter is a store with a lock and compare-and-swap that reports a
// lost lease from the next Lock once loseLease is set, as redisstore does
// when its renewal finds the lease taken.
type leaseReporter struct {
	s interface {
		refresh.Locker
		refresh.CompareAndSwapper
	}
	loseLease atomic.Bool
}

func (l *leaseReporter) Load(ctx context.Context, k string) (*oauth2.Token, error) {
	return l.s.Load(ctx, k)
}

func (l *leaseReporter) Save(ctx context.Context, k string, t *oauth2.Token) error {
	return l.s.Save(ctx, k, t)
}

func (l *leaseReporter) CompareAndSwap(ctx context.Context, k string, old, new *oauth2.Token) error {
	return l.s.CompareAndSwap(ctx, k, old, new)
}

func (l *leaseReporter) Lock(ctx context.Context, k string) (func(), error) {
	if l.loseLease.CompareAndSwap(true, false) {
		refresh.ReportStoreEvent(ctx, refresh.StoreEvent{Op: "lock", What: "lease lost"})
	}
	return l.s.Lock(ctx, k)
}

// run is the scripted run's world: a refreshtest server served in memory,
// an engine instrumented through the SDK's manual reader and in-memory
// span exporter, and a store whose faults the script sets.
type run struct {
	t      *testing.T
	srv    *refreshtest.Server
	api    *gate
	token  *gate
	faults *storetest.Faults
	store  *leaseReporter
	engine *refresh.Engine
	client *http.Client
	reader *sdkmetric.ManualReader
	spans  *tracetest.InMemoryExporter
	tracer trace.Tracer
}

func newRun(t *testing.T, srv *refreshtest.Server) *run {
	r := &run{t: t, srv: srv, reader: sdkmetric.NewManualReader(), spans: tracetest.NewInMemoryExporter(), faults: new(storetest.Faults)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(r.spans))
	r.tracer = tp.Tracer("test")
	tel, err := refreshotel.New(refreshotel.Options{
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(r.reader)),
		TracerProvider: tp,
		StoreKind:      "lease",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Close() })
	ll, err := refresh.NewLeaseLocker(new(refresh.MemoryStore), refresh.LeaseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.store = &leaseReporter{s: r.faults.Wrap(ll).(interface {
		refresh.Locker
		refresh.CompareAndSwapper
	})}
	r.api, r.token = &gate{rt: srv.Transport()}, &gate{rt: srv.Transport()}
	r.engine, err = tel.NewEngine(refresh.Config{
		Endpoint: &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
			ClientSecret: refreshtest.DefaultClientSecret, Auth: refresh.AuthInBody,
			HTTPClient: &http.Client{Transport: r.token}},
		Store: r.store,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.engine.Close(context.Background()) })
	r.client = &http.Client{Transport: &refresh.Transport{Engine: r.engine, Base: r.api}}
	return r
}

// get sends one request for key inside a span of its own, which it
// returns, with the status or the error.
func (r *run) get(ctx context.Context) (trace.SpanContext, int, error) {
	ctx, span := r.tracer.Start(refresh.WithKey(ctx, key), "GET /api")
	defer span.End()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.srv.URL+"/api", nil)
	resp, err := r.client.Do(req)
	if err != nil {
		return span.SpanContext(), 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return span.SpanContext(), resp.StatusCode, nil
}

// metrics returns every data point of the scope as "name{attributes}" and
// its value: a histogram's count of samples, a sum's or a gauge's value.
func (r *run) metrics() map[string]int64 {
	var rm metricdata.ResourceMetrics
	if err := r.reader.Collect(context.Background(), &rm); err != nil {
		r.t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != refreshotel.ScopeName {
			r.t.Errorf("scope %q; want %q", sm.Scope.Name, refreshotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+attrs(p.Attributes)] = int64(p.Count)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[m.Name+attrs(p.Attributes)] = p.Value
				}
			default:
				r.t.Errorf("%s: data of type %T", m.Name, m.Data)
			}
		}
	}
	return out
}

func attrs(s attribute.Set) string {
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, fmt.Sprintf("%s=%s", a.Key, a.Value.Emit()))
	}
	return "{" + strings.Join(kv, ",") + "}"
}

// diff reports the points of got and want that differ.
func diff(t *testing.T, phase string, got, want map[string]int64) {
	t.Helper()
	var names []string
	for n := range got {
		names = append(names, n)
	}
	for n := range want {
		if _, ok := got[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		g, gok := got[n]
		w, wok := want[n]
		if g != w || gok != wok {
			t.Errorf("%s: %s = %d (present %v); want %d (present %v)", phase, n, g, gok, w, wok)
		}
	}
}

// TestScriptedRun runs a storm, a rotation whose save fails once and a
// rejected refresh token through an instrumented engine, on synctest's
// clock, and asserts every data point and span.
func TestScriptedRun(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	synctest.Test(t, func(t *testing.T) {
		r := newRun(t, srv)
		ctx := context.Background()
		first := srv.Token()
		if err := r.engine.SetToken(ctx, key, first); err != nil {
			t.Fatal(err)
		}
		secrets := []string{first.AccessToken, first.RefreshToken}
		want := map[string]int64{
			"oauth2.client.keys{}":                 1,
			"oauth2.client.keys.reauth_required{}": 0,
			"oauth2.client.keys.save_pending{}":    0,
			"oauth2.client.events.dropped{}":       0,
		}

		// 1. A storm: the server revokes the access token, and 20 requests
		// held until all arrive get their 401 at once; one refresh, which
		// the token endpoint holds until the other 19 have joined it.
		const storm = 20
		srv.RevokeAccessTokens()
		r.api.close()
		r.token.close()
		var wg sync.WaitGroup
		requests := make([]trace.SpanContext, storm)
		for i := range storm {
			wg.Go(func() {
				sc, code, err := r.get(ctx)
				requests[i] = sc
				if code != http.StatusOK {
					t.Errorf("storm request: %d, %v; want 200", code, err)
				}
			})
		}
		synctest.Wait()
		r.api.open()
		synctest.Wait()
		r.token.open()
		wg.Wait()
		synctest.Wait()
		want["oauth2.client.refresh.duration{oauth2.refresh.outcome=refreshed,oauth2.refresh.trigger=rejected}"] = 1
		want["oauth2.client.refresh.joined{oauth2.refresh.trigger=rejected}"] = storm - 1
		want["oauth2.client.resends{http.response.status_code=401,oauth2.resend.reason=refreshed}"] = storm
		want["oauth2.client.token_request.duration{}"] = 1
		want["oauth2.client.lock.wait{oauth2.store.kind=lease}"] = 1
		diff(t, "after the storm", r.metrics(), want)

		// 2. A rotation: two hours later the token has expired; one
		// request refreshes it, the lock reports a lost lease, and the
		// save of the new token fails once: it is pending until the
		// background retry saves it.
		time.Sleep(2 * time.Hour)
		r.store.loseLease.Store(true)
		r.faults.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultError})
		if _, code, err := r.get(ctx); code != http.StatusOK {
			t.Fatalf("request after expiry: %d, %v; want 200", code, err)
		}
		synctest.Wait()
		want["oauth2.client.refresh.duration{oauth2.refresh.outcome=refreshed,oauth2.refresh.trigger=expired}"] = 1
		want["oauth2.client.token_request.duration{}"] = 2
		want["oauth2.client.lock.wait{oauth2.store.kind=lease}"] = 2
		want["oauth2.client.lease.lost{oauth2.store.kind=lease,oauth2.store.operation=lock}"] = 1
		want["oauth2.client.save.failures{oauth2.store.kind=lease}"] = 1
		want["oauth2.client.keys.save_pending{}"] = 1
		diff(t, "after the failed save", r.metrics(), want)
		time.Sleep(time.Minute)
		synctest.Wait()
		want["oauth2.client.keys.save_pending{}"] = 0
		diff(t, "after the save was retried", r.metrics(), want)

		// 3. A rejected refresh token: the next refresh gets
		// invalid_grant, and the key awaits re-authentication.
		srv.RefuseRefreshTokens("invalid_grant", "Refresh token has expired or is invalid.")
		time.Sleep(2 * time.Hour)
		if _, _, err := r.get(ctx); !errors.Is(err, refresh.ErrReauthRequired) {
			t.Fatalf("request with a refused refresh token: %v; want ErrReauthRequired", err)
		}
		synctest.Wait()
		want["oauth2.client.refresh.duration{oauth2.refresh.outcome=reauth_required,oauth2.refresh.trigger=expired}"] = 1
		want["oauth2.client.token_request.duration{error.type=reauth_required,http.response.status_code=400,oauth2.error.code=invalid_grant}"] = 1
		want["oauth2.client.lock.wait{oauth2.store.kind=lease}"] = 3
		want["oauth2.client.keys.reauth_required{}"] = 1
		diff(t, "after the refused refresh token", r.metrics(), want)

		if st := srv.Stats(); st.Refreshes != 2 || st.InvalidGrant != 1 || st.Reuses != 0 {
			t.Errorf("server: %d refreshes, %d refused, %d reuses; want 2, 1 and 0", st.Refreshes, st.InvalidGrant, st.Reuses)
		}
		checkSpans(t, r.spans.GetSpans(), requests)
		noSecrets(t, r.spans.GetSpans(), r.metrics(), append(secrets, key))
	})
}

// tree is the spans of a run, sorted by role.
type tree struct {
	requests map[trace.SpanID]bool     // the test's request spans
	flights  []tracetest.SpanStub      // oauth2.refresh, by start
	resent   map[trace.SpanID]int      // oauth2.resend spans per parent
	children map[trace.SpanID][]string // the names of the other spans, per parent
	all      tracetest.SpanStubs
}

func newTree(spans tracetest.SpanStubs) tree {
	tr := tree{requests: map[trace.SpanID]bool{}, resent: map[trace.SpanID]int{}, children: map[trace.SpanID][]string{}, all: spans}
	for _, s := range spans {
		if s.Name == "GET /api" {
			tr.requests[s.SpanContext.SpanID()] = true
		}
	}
	for _, s := range spans {
		switch parent := s.Parent.SpanID(); s.Name {
		case "GET /api":
		case "oauth2.refresh":
			tr.flights = append(tr.flights, s)
		case "oauth2.resend":
			tr.resent[parent]++
		default:
			tr.children[parent] = append(tr.children[parent], s.Name)
		}
	}
	sort.Slice(tr.flights, func(i, j int) bool { return tr.flights[i].StartTime.Before(tr.flights[j].StartTime) })
	return tr
}

// checkSpans checks the spans of the scripted run: each flight a child of
// a request's span, the storm's linked to the 19 requests that joined it,
// each phase a child of its flight, each resend a child of its request.
func checkSpans(t *testing.T, spans tracetest.SpanStubs, storm []trace.SpanContext) {
	t.Helper()
	tr := newTree(spans)
	if len(tr.requests) != len(storm)+2 || len(tr.flights) != 3 || len(tr.resent) != len(storm) {
		t.Fatalf("%d request spans, %d flight spans, %d requests resent; want %d, 3, %d", len(tr.requests), len(tr.flights), len(tr.resent), len(storm)+2, len(storm))
	}
	checkResends(t, tr, storm)
	checkFlights(t, tr)
	checkStormFlight(t, tr.flights[0], storm)
	// The refused token request is an error span with its status code.
	for _, s := range spans {
		if s.Name == "oauth2.token_request" && s.Parent.SpanID() == tr.flights[2].SpanContext.SpanID() {
			if attrOf(s.Attributes, "http.response.status_code") != "400" || attrOf(s.Attributes, "oauth2.error.code") != "invalid_grant" || s.Status.Code.String() != "Error" {
				t.Errorf("refused token request span: %v %v; want 400 invalid_grant, status Error", s.Attributes, s.Status)
			}
		}
	}
}

// checkResends: every resend span is the child of a request's span, with
// the reason "refreshed", and each storm request has one.
func checkResends(t *testing.T, tr tree, storm []trace.SpanContext) {
	t.Helper()
	for _, s := range tr.all {
		if s.Name == "oauth2.resend" && (!tr.requests[s.Parent.SpanID()] || attrOf(s.Attributes, "oauth2.resend.reason") != "refreshed") {
			t.Errorf("resend span with parent %v, attributes %v; want a request's child, reason refreshed", s.Parent.SpanID(), s.Attributes)
		}
	}
	for _, sc := range storm {
		if tr.resent[sc.SpanID()] != 1 {
			t.Errorf("storm request %v resent %d times in spans; want 1", sc.SpanID(), tr.resent[sc.SpanID()])
		}
	}
}

// checkFlights: each flight is a request's child, with its trigger,
// outcome, status, links and phases, the phases inside the flight.
func checkFlights(t *testing.T, tr tree) {
	t.Helper()
	type shape struct {
		trigger, outcome, status string
		links                    int
		phases                   []string
	}
	all := []string{"oauth2.lock", "oauth2.store.read", "oauth2.token_request", "oauth2.save"}
	want := []shape{
		{"rejected", "refreshed", "", 19, all},
		{"expired", "refreshed", "", 0, all},
		{"expired", "reauth_required", "reauth_required: invalid_grant", 0, all[:3]},
	}
	for i, f := range tr.flights {
		if !tr.requests[f.Parent.SpanID()] {
			t.Errorf("flight %d: parent is not a request's span", i+1)
		}
		got := shape{attrOf(f.Attributes, "oauth2.refresh.trigger"), attrOf(f.Attributes, "oauth2.refresh.outcome"), f.Status.Description, len(f.Links), tr.children[f.SpanContext.SpanID()]}
		if !slices.Equal(got.phases, want[i].phases) || got.trigger != want[i].trigger || got.outcome != want[i].outcome || got.status != want[i].status || got.links != want[i].links {
			t.Errorf("flight %d: %+v; want %+v", i+1, got, want[i])
		}
		for _, c := range tr.all {
			if c.Parent.SpanID() == f.SpanContext.SpanID() && (c.StartTime.Before(f.StartTime) || c.EndTime.After(f.EndTime)) {
				t.Errorf("flight %d: phase %s [%v, %v] outside the flight [%v, %v]", i+1, c.Name, c.StartTime, c.EndTime, f.StartTime, f.EndTime)
			}
		}
	}
}

// checkStormFlight: the storm's flight's parent and links are the storm's
// requests, once each.
func checkStormFlight(t *testing.T, f tracetest.SpanStub, storm []trace.SpanContext) {
	t.Helper()
	members := map[trace.SpanID]bool{f.Parent.SpanID(): true}
	for _, l := range f.Links {
		members[l.SpanContext.SpanID()] = true
	}
	for _, sc := range storm {
		delete(members, sc.SpanID())
	}
	if len(members) != 0 || len(f.Links) != len(storm)-1 {
		t.Errorf("the storm's flight: parent and links are not the %d requests", len(storm))
	}
}

func attrOf(kv []attribute.KeyValue, k string) string {
	for _, a := range kv {
		if string(a.Key) == k {
			return a.Value.Emit()
		}
	}
	return ""
}

// noSecrets fails the test if a span or a data point names the key or
// holds a token of the run: refreshtest's tokens of the first grant all
// start with "at-1-" or "rt-1-".
func noSecrets(t *testing.T, spans tracetest.SpanStubs, points map[string]int64, secrets []string) {
	t.Helper()
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintln(&b, s.Name, s.Attributes, s.Status, s.Events)
		for _, l := range s.Links {
			fmt.Fprintln(&b, l.Attributes)
		}
	}
	for p := range points {
		fmt.Fprintln(&b, p)
	}
	all := b.String()
	for _, s := range append(secrets, "at-1-", "rt-1-") {
		if strings.Contains(all, s) {
			t.Errorf("telemetry holds %q", s)
		}
	}
}
