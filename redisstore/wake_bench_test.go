package redisstore_test

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oauthkit/refresh/redisstore"
)

// BenchmarkWakeUp measures how soon a waiting Lock gets the lock after its
// holder unlocks. Each iteration a holder locks a key through one Store, a
// waiter (a second Store with a client of its own, as another process
// would have) calls Lock on a goroutine, and once it is surely waiting
// (3 ms, not measured) the holder unlocks; the latency runs from just
// before unlock to just after the waiter's Lock returns. It reports the
// median and 99th percentile in milliseconds, and the share of releases
// that the waiter heard announced (woken/op; 0 when it polls).
func BenchmarkWakeUp(b *testing.B) { benchWakeUp(b, 3*time.Millisecond) }

// BenchmarkWakeUpLongHold is BenchmarkWakeUp with the lock held for 50 ms,
// about a call to a token endpoint, so that a polling waiter has reached
// its longest pause.
func BenchmarkWakeUpLongHold(b *testing.B) { benchWakeUp(b, 50*time.Millisecond) }

func benchWakeUp(b *testing.B, hold time.Duration) {
	c := testClient(b)
	prefix := testPrefix(b, c)
	wc := newClient(redisAddr())
	b.Cleanup(func() { wc.Close() })
	holder, err := redisstore.New(c, redisstore.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	waiter, err := redisstore.New(wc, redisstore.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		lat = append(lat, wakeOnce(b, holder, waiter, "wake-"+strconv.Itoa(i), hold))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
	b.ReportMetric(float64(redisstore.Wake(waiter).Woken)/float64(b.N), "woken/op")
}

// wakeOnce locks key through holder, has waiter wait for it, unlocks after
// hold, and returns how long after the unlock the waiter got the lock.
func wakeOnce(b *testing.B, holder, waiter *redisstore.Store, key string, hold time.Duration) time.Duration {
	ctx := context.Background()
	unlock, err := holder.Lock(ctx, key)
	if err != nil {
		b.Fatal(err)
	}
	got := make(chan time.Time, 1)
	go func() {
		u, err := waiter.Lock(ctx, key)
		t1 := time.Now()
		if err != nil {
			b.Error(err)
		} else {
			u()
		}
		got <- t1
	}()
	time.Sleep(hold)
	t0 := time.Now()
	unlock()
	return (<-got).Sub(t0)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkLockCycle measures an uncontended Lock and unlock of one key,
// and reports the Redis commands each cycle sends.
func BenchmarkLockCycle(b *testing.B) {
	c := newClient(redisAddr())
	b.Cleanup(func() { c.Close() })
	testClient(b) // skips if Redis is down
	var cmds commandCounter
	c.AddHook(&cmds)
	s := newStore(b, c, redisstore.Options{})
	ctx := context.Background()
	unlock, err := s.Lock(ctx, "cycle") // loads the scripts
	if err != nil {
		b.Fatal(err)
	}
	unlock()
	cmds.n.Store(0)
	b.ResetTimer()
	for range b.N {
		unlock, err := s.Lock(ctx, "cycle")
		if err != nil {
			b.Fatal(err)
		}
		unlock()
	}
	b.StopTimer()
	b.ReportMetric(float64(cmds.n.Load())/float64(b.N), "cmds/op")
}

// commandCounter is a go-redis hook that counts the commands (each a round
// trip) a client sends, those of pipelines included.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}
