package refreshotel_test

import (
	"context"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshotel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// BenchmarkRecordRefresh: the cost of recording one refresh event (a
// flight with its four phases, on the event goroutine, never on the
// request path), with the SDK's metrics and sampled spans to a discarding
// exporter, and with metrics only (spans not sampled).
func BenchmarkRecordRefresh(b *testing.B) {
	for _, sampled := range []bool{true, false} {
		name := "spans"
		sampler := sdktrace.AlwaysSample()
		if !sampled {
			name, sampler = "metrics-only", sdktrace.NeverSample()
		}
		b.Run(name, func(b *testing.B) {
			exp := tracetest.NewNoopExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sampler))
			tel, err := refreshotel.New(refreshotel.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())), TracerProvider: tp})
			if err != nil {
				b.Fatal(err)
			}
			defer tel.Close()
			var c refresh.Config
			tel.Instrument(&c)
			now := time.Now()
			ev := refresh.Event{Kind: refresh.EventRefresh, Key: "k", Trigger: refresh.TriggerExpired, Outcome: refresh.OutcomeRefreshed,
				Start: now, Duration: 50 * time.Millisecond, LockWait: time.Millisecond, StoreRead: time.Millisecond, Save: time.Millisecond,
				Phases:   refresh.PhaseLock | refresh.PhaseStoreRead | refresh.PhaseSave,
				Requests: []refresh.TokenRequest{{Start: now, Duration: 40 * time.Millisecond}},
				Callers:  []context.Context{context.Background(), context.Background()},
				OldToken: "0123abcd", NewToken: "4567ef01"}
			b.ReportAllocs()
			for b.Loop() {
				c.OnEvent(ev)
			}
		})
	}
}
