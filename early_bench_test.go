package refresh

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// BenchmarkEarlyRefreshLatency measures, on the real clock, the request
// latencies of 8 goroutines of steady traffic while 4-second tokens are
// refreshed early, every 1 to 2 seconds, by a token endpoint that takes
// 1.5 s. The API answers at once, so any latency beyond the transport's own
// is a wait for a refresh. TestEarlyRefreshBlocksNobody asserts there is
// none; this reports what the clock says. One op is 5 s of traffic.
//
//	go test -run '^$' -bench BenchmarkEarlyRefreshLatency -benchtime 1x
func BenchmarkEarlyRefreshLatency(b *testing.B) {
	srv := newServer(b, refreshtest.Options{Lifetime: 4 * time.Second})
	for range b.N {
		var log flightLog
		e, _ := New(Config{Endpoint: slowEndpoint(srv, 1500*time.Millisecond), ExpirySkew: 2 * time.Second, OnEvent: log.event})
		e.SetToken(context.Background(), "", srv.Token())
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
		var mu sync.Mutex
		var lat []time.Duration
		end := time.Now().Add(5 * time.Second)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for time.Now().Before(end) {
					req, _ := http.NewRequest("GET", "http://api.test/", nil)
					start := time.Now()
					resp, err := c.Do(req)
					d := time.Since(start)
					if err != nil || resp.StatusCode != 200 {
						b.Errorf("request: %v", err)
						return
					}
					resp.Body.Close()
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		e.Close(context.Background())
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
		b.ReportMetric(float64(log.count(OutcomeRefreshed)), "refreshes")
		b.ReportMetric(float64(log.waited), "waited")
	}
}
