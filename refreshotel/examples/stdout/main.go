// Command stdout shows what refreshotel records: it runs an instrumented
// engine against a local refreshtest server (a storm of requests after the
// server revoked the access token, then a rotation) and prints the spans
// and the metrics with OpenTelemetry's stdout exporters, as JSON.
//
//	cd refreshotel && go run ./examples/stdout
//
// In a service, pass the providers of your OTLP or Prometheus exporters in
// refreshotel.Options instead, or set otel's global providers.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sync"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshotel"
	"github.com/oauthkit/refresh/refreshtest"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	spans, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	metrics, err := stdoutmetric.New(stdoutmetric.WithWriter(out), stdoutmetric.WithPrettyPrint())
	if err != nil {
		return err
	}
	reader := sdkmetric.NewPeriodicReader(metrics)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	tel, err := refreshotel.New(refreshotel.Options{MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		return err
	}
	defer tel.Close()

	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	engine, err := tel.NewEngine(refresh.Config{OAuth2: srv.Config()})
	if err != nil {
		return err
	}
	defer engine.Close(ctx)
	if err := engine.SetToken(ctx, "", srv.Token()); err != nil {
		return err
	}
	client := engine.Client(nil)
	tracer := tp.Tracer("example")

	// A storm: the server revokes the access token; 10 requests get a 401
	// and share one refresh.
	srv.RevokeAccessTokens()
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			ctx, span := tracer.Start(ctx, "GET /api")
			defer span.End()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api", nil)
			resp, err := client.Do(req)
			if err != nil {
				log.Print(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	// A rotation, asked for directly.
	if _, err := engine.Refresh(ctx, "", nil); err != nil {
		return err
	}

	// Close the engine first: it delivers its last events.
	if err := engine.Close(ctx); err != nil {
		return err
	}
	if err := tp.Shutdown(ctx); err != nil {
		return err
	}
	if err := mp.Shutdown(ctx); err != nil { // exports the metrics once more
		return err
	}
	st := srv.Stats()
	fmt.Fprintf(os.Stderr, "server: %d refreshes, %d reuses, %d API requests (%d answered 401)\n", st.Refreshes, st.Reuses, st.APIRequests, st.Served401)
	return nil
}
