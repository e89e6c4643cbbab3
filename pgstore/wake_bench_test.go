package pgstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/oauthkit/refresh/pgstore"
)

// BenchmarkWakeUp measures how long a waiting Lock takes to return after
// the holder unlocks: the holder locks a key through one Store, a waiter
// (a second Store with a pool of its own, as another process would have)
// calls Lock, and after ~3 ms, when it is surely waiting, the holder
// unlocks. The latency runs from just before unlock to just after the
// waiter's Lock returns; p50-ms and p99-ms are its median and 99th
// percentile.
func BenchmarkWakeUp(b *testing.B) { benchWakeUp(b, 3*time.Millisecond) }

// BenchmarkWakeUpLongHold is BenchmarkWakeUp with the lock held for 100 ms
// after the waiter starts, the time of a slow token endpoint: long enough
// for a polling waiter to have slowed down to its longest pause.
func BenchmarkWakeUpLongHold(b *testing.B) { benchWakeUp(b, 100*time.Millisecond) }

func benchWakeUp(b *testing.B, hold time.Duration) {
	opts := pgstore.Options{Schema: testSchema(b)}
	holder := migrated(b, testPool(b), opts)
	waiter, err := pgstore.New(testPool(b), opts)
	if err != nil {
		b.Fatal(err)
	}
	const key = "alice"
	type result struct {
		t1     time.Time
		unlock func()
		err    error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	round := func() time.Duration {
		unlock, err := holder.Lock(ctx, key)
		if err != nil {
			b.Fatalf("holder: %v", err)
		}
		done := make(chan result, 1)
		go func() {
			u, err := waiter.Lock(ctx, key)
			done <- result{time.Now(), u, err}
		}()
		time.Sleep(hold)
		t0 := time.Now()
		unlock()
		r := <-done
		if r.err != nil {
			b.Fatalf("waiter: %v", r.err)
		}
		r.unlock()
		return r.t1.Sub(t0)
	}
	round() // connections opened, the table's namespace looked up
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, round())
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99+99)/100-1]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// BenchmarkLockUncontended is one Lock and unlock of a key no one else
// holds or waits for.
func BenchmarkLockUncontended(b *testing.B) {
	opts := pgstore.Options{Schema: testSchema(b)}
	s := migrated(b, testPool(b), opts)
	ctx := context.Background()
	for b.Loop() {
		unlock, err := s.Lock(ctx, "alice")
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
}
