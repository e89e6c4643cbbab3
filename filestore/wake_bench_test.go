//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oauthkit/refresh/filestore"
)

// BenchmarkWakeUp measures how long a waiting Lock takes to return after
// the holder unlocks. The waiter goes through a second Store over the same
// directory, which the lock treats as another process would (an flock
// belongs to the open file description). The latency is from just before
// the holder's unlock to just after the waiter's Lock returns; the time
// the holder holds the lock first is not measured.
//
// "hold=2ms" gives the waiter 2 ms to start waiting each time. A waiter that
// polls does so on a fixed schedule, so a fixed hold meets it at the same
// point of its schedule every time: "hold=2-41ms" spreads the holds evenly
// over 2 ms to 41 ms, as the refreshes of a real holder would be.
//
// ns/op is meaningless here; read p50-ms and p99-ms.
func BenchmarkWakeUp(b *testing.B) {
	b.Run("hold=2ms", func(b *testing.B) {
		benchWakeUp(b, func(int) time.Duration { return 2 * time.Millisecond })
	})
	b.Run("hold=2-41ms", func(b *testing.B) {
		benchWakeUp(b, func(i int) time.Duration { return time.Duration(2+i%40) * time.Millisecond })
	})
}

// benchWakeUp runs BenchmarkWakeUp with the holder holding the lock for
// hold(i) in iteration i before it unlocks.
func benchWakeUp(b *testing.B, hold func(i int) time.Duration) {
	holder, dir := newStore(b)
	waiter, err := filestore.New(dir)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	type result struct {
		t1     time.Time
		unlock func()
		err    error
	}
	lat := make([]time.Duration, 0, b.N)
	for i := 0; b.Loop(); i++ {
		unlock, err := holder.Lock(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan result, 1)
		go func() {
			u, err := waiter.Lock(ctx, "k")
			done <- result{time.Now(), u, err}
		}()
		time.Sleep(hold(i))
		t0 := time.Now()
		unlock()
		r := <-done
		if r.err != nil {
			b.Fatal(r.err)
		}
		r.unlock()
		lat = append(lat, r.t1.Sub(t0))
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
}

// BenchmarkLockUncontended measures a full Lock and unlock of a free key.
func BenchmarkLockUncontended(b *testing.B) {
	s, _ := newStore(b)
	ctx := context.Background()
	for b.Loop() {
		unlock, err := s.Lock(ctx, "k")
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100 // ceil(n·p/100), the rank
	return sorted[max(i-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
