package refreshotel

import (
	"context"
	"errors"

	"github.com/oauthkit/refresh"
	"go.opentelemetry.io/otel/metric"
)

// buckets are the histograms' boundaries in seconds, from a lock taken at
// once to a token endpoint at its timeout.
var buckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// instruments are the synchronous instruments that events are recorded
// on, and the gauges observed from Stats.
type instruments struct {
	refreshDuration metric.Float64Histogram
	requestDuration metric.Float64Histogram
	joined          metric.Int64Counter
	resends         metric.Int64Counter
	paused          metric.Int64Counter
	lockWait        metric.Float64Histogram
	leaseLost       metric.Int64Counter
	saveFailures    metric.Int64Counter

	keys, reauth, pending metric.Int64ObservableUpDownCounter
	dropped               metric.Int64ObservableCounter
}

func (in *instruments) init(m metric.Meter) error {
	var errs []error
	hist := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	count := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, desc string) metric.Int64ObservableUpDownCounter {
		g, err := m.Int64ObservableUpDownCounter(name, metric.WithUnit("{key}"), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	in.refreshDuration = hist("oauth2.client.refresh.duration", "Duration of refresh flights, from start to result.")
	in.requestDuration = hist("oauth2.client.token_request.duration", "Duration of each token-endpoint call of a refresh.")
	in.joined = count("oauth2.client.refresh.joined", "{caller}", "Callers that joined a refresh flight already running.")
	in.resends = count("oauth2.client.resends", "{request}", "Requests the API rejected and that were sent again with another token.")
	in.paused = count("oauth2.client.paused", "{request}", "Rejections handed back without a refresh, because the API rejected freshly refreshed tokens.")
	in.lockWait = hist("oauth2.client.lock.wait", "Time refreshes waited for the store's cross-process lock.")
	in.leaseLost = count("oauth2.client.lease.lost", "{lease}", "Leases of cross-process locks lost before their release.")
	in.saveFailures = count("oauth2.client.save.failures", "{save}", "New tokens the store could not save; they are served from memory and saved again.")
	in.keys = gauge("oauth2.client.keys", "Keys with a token or a failure in memory.")
	in.reauth = gauge("oauth2.client.keys.reauth_required", "Keys awaiting re-authentication.")
	in.pending = gauge("oauth2.client.keys.save_pending", "Keys whose newest token is not in the store yet.")
	var err error
	in.dropped, err = m.Int64ObservableCounter("oauth2.client.events.dropped", metric.WithUnit("{event}"),
		metric.WithDescription("Events not recorded because the event handler fell behind."))
	return errors.Join(append(errs, err)...)
}

// observe registers the callback that reports stats as the gauges.
func (in *instruments) observe(m metric.Meter, stats func() refresh.Stats) (metric.Registration, error) {
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := stats()
		o.ObserveInt64(in.keys, int64(s.Keys))
		o.ObserveInt64(in.reauth, int64(s.ReauthRequired))
		o.ObserveInt64(in.pending, int64(s.PendingSaves))
		o.ObserveInt64(in.dropped, int64(s.EventsDropped))
		return nil
	}, in.keys, in.reauth, in.pending, in.dropped)
}
