package refreshotel_test

import (
	"context"
	"fmt"
	"sort"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshotel"
	"github.com/oauthkit/refresh/refreshtest"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// An engine built through a Telemetry records its refreshes. Here the
// metrics go to a manual reader; in a service, pass the MeterProvider and
// TracerProvider of your exporters (or leave them nil for otel's global
// ones). See examples/stdout for spans and metrics printed as JSON.
func ExampleTelemetry_NewEngine() {
	reader := sdkmetric.NewManualReader()
	tel, err := refreshotel.New(refreshotel.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		panic(err)
	}
	defer tel.Close()

	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	engine, err := tel.NewEngine(refresh.Config{OAuth2: srv.Config()})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	engine.SetToken(ctx, "", srv.Token())
	if _, err := engine.Refresh(ctx, "", nil); err != nil {
		panic(err)
	}
	engine.Close(ctx) // delivers the last events

	var rm metricdata.ResourceMetrics
	reader.Collect(ctx, &rm)
	var lines []string
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch d := m.Data.(type) {
		case metricdata.Histogram[float64]:
			for _, p := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s %s: %d", m.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Count))
			}
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				lines = append(lines, fmt.Sprintf("%s: %d", m.Name, p.Value))
			}
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// oauth2.client.events.dropped: 0
	// oauth2.client.keys.reauth_required: 0
	// oauth2.client.keys.save_pending: 0
	// oauth2.client.keys: 1
	// oauth2.client.refresh.duration oauth2.refresh.outcome=refreshed,oauth2.refresh.trigger=rejected: 1
	// oauth2.client.token_request.duration : 1
}
