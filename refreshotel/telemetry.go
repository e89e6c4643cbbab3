package refreshotel

import (
	"sync"

	"github.com/oauthkit/refresh"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/oauthkit/refresh"

// Options configure a [Telemetry]. The zero value uses the global
// providers.
type Options struct {
	// MeterProvider and TracerProvider default to otel's global ones.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	// StoreKind overrides the oauth2.store.kind attribute that
	// [StoreKind] derives from each Config.Store.
	StoreKind string
}

// Telemetry records the events of the engines it instruments as metrics
// and spans, and observes their [refresh.Stats] as gauges. Its methods are
// safe for concurrent use.
type Telemetry struct {
	storeKind string
	inst      instruments
	tracer    trace.Tracer
	reg       metric.Registration

	mu      sync.Mutex
	engines []*refresh.Engine
}

// New returns a Telemetry that creates its instruments and spans through
// the providers of o. Close it to stop observing the engines.
func New(o Options) (*Telemetry, error) {
	mp, tp := o.MeterProvider, o.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	t := &Telemetry{storeKind: o.StoreKind, tracer: tp.Tracer(ScopeName)}
	meter := mp.Meter(ScopeName)
	if err := t.inst.init(meter); err != nil {
		return nil, err
	}
	reg, err := t.inst.observe(meter, t.stats)
	if err != nil {
		return nil, err
	}
	t.reg = reg
	return t, nil
}

// NewEngine returns refresh.New(c) with c instrumented (see [Telemetry.Instrument]) and
// the engine observed (see [Telemetry.Observe]).
func (t *Telemetry) NewEngine(c refresh.Config) (*refresh.Engine, error) {
	t.Instrument(&c)
	e, err := refresh.New(c)
	if err != nil {
		return nil, err
	}
	t.Observe(e)
	return e, nil
}

// Instrument sets c.OnEvent to record each event, and then to call the
// OnEvent c had, if any. Events of this configuration's store are reported
// under the kind [StoreKind] gives for c.Store, unless Options.StoreKind
// is set.
func (t *Telemetry) Instrument(c *refresh.Config) {
	kind := t.storeKind
	if kind == "" {
		kind = StoreKind(c.Store)
	}
	r := newRecorder(t, kind)
	next := c.OnEvent
	if next == nil {
		c.OnEvent = r.record
		return
	}
	c.OnEvent = func(ev refresh.Event) {
		defer next(ev) // even if recording panicked (the engine recovers it)
		r.record(ev)
	}
}

// Observe adds e's Stats to the gauges: with several engines, the gauges
// report their sums.
func (t *Telemetry) Observe(e *refresh.Engine) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.engines = append(t.engines, e)
}

// stats sums the Stats of the engines observed.
func (t *Telemetry) stats() refresh.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum refresh.Stats
	for _, e := range t.engines {
		s := e.Stats()
		sum.Keys += s.Keys
		sum.ReauthRequired += s.ReauthRequired
		sum.PendingSaves += s.PendingSaves
		sum.EventsDropped += s.EventsDropped
	}
	return sum
}

// Close stops observing the engines: the gauges report nothing after it.
// Events are still recorded.
func (t *Telemetry) Close() error {
	t.mu.Lock()
	reg := t.reg
	t.engines, t.reg = nil, nil
	t.mu.Unlock()
	if reg == nil {
		return nil
	}
	return reg.Unregister()
}
