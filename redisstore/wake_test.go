package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oauthkit/refresh/redisstore"
)

// eventually waits until cond holds, failing the test if it does not
// within 10 s: a bound for a loaded machine, not a measure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not so after 10 s", what)
		}
	}
}

// waiterStore returns a Store with a client of its own (another process,
// as it were) over the shared Redis, under prefix.
func waiterStore(t *testing.T, prefix string, opts redisstore.Options) (*redisstore.Store, *redis.Client) {
	t.Helper()
	wc := newClient(redisAddr())
	t.Cleanup(func() { wc.Close() })
	return storeWith(t, wc, prefix, opts), wc
}

// lockAsync calls Lock on a goroutine; the channel gets its unlock (nil
// on error) and error.
type lockResult struct {
	unlock func()
	err    error
}

func lockAsync(s *redisstore.Store, ctx context.Context, key string) <-chan lockResult {
	done := make(chan lockResult, 1)
	go func() {
		u, err := s.Lock(ctx, key)
		done <- lockResult{u, err}
	}()
	return done
}

// numSub returns how many connections the shared Redis has subscribed to
// channel.
func numSub(c *redis.Client, channel string) int64 {
	return c.PubSubNumSub(context.Background(), channel).Val()[channel]
}

// TestWaitCancelled: a Lock waiting with its subscription confirmed
// returns an error wrapping context.Canceled when its context is
// cancelled, holds nothing, and leaves no subscription behind, in the
// Store or in Redis.
func TestWaitCancelled(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	holder := storeWith(t, c, prefix, redisstore.Options{})
	w, _ := waiterStore(t, prefix, redisstore.Options{})
	const key = "cancelled"
	unlock := lockWithin(t, holder, key, 2*time.Second, "holder")
	ctx, cancel := context.WithCancel(context.Background())
	done := lockAsync(w, ctx, key)
	eventually(t, "the waiter subscribed", func() bool { return redisstore.Wake(w).Live == 1 })
	if n := numSub(c, redisstore.WakeChannel(w, key)); n != 1 {
		t.Errorf("Redis has %d subscribers of the lock's channel, want 1", n)
	}
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) || r.unlock != nil {
		t.Fatalf("cancelled Lock: got %v, want an error wrapping context.Canceled and no unlock", r.err)
	}
	eventually(t, "the table is empty", func() bool { return redisstore.Wake(w).Channels == 0 })
	eventually(t, "Redis has no subscriber", func() bool { return numSub(c, redisstore.WakeChannel(w, key)) == 0 })
	unlock()
	if n := c.Exists(context.Background(), redisstore.LockKey(w, key)).Val(); n != 0 {
		t.Errorf("the lock exists after its holder's unlock: the cancelled Lock holds it")
	}
}

// TestLostWakeUp: a waiter gets the lock although no wake-up comes, by
// its fallback tries: when the release announces nothing (as when the
// message is lost), and when the holder's lease expires (as when it dies).
func TestLostWakeUp(t *testing.T) {
	c := testClient(t)
	for _, how := range []string{"release unannounced", "lease expired"} {
		t.Run(how, func(t *testing.T) {
			prefix := testPrefix(t, c)
			ttl := redisstore.DefaultLockTTL // the fallback tries, not the lease, end the wait
			if how == "lease expired" {
				ttl = 300 * time.Millisecond
			}
			holder := storeWith(t, c, prefix, redisstore.Options{LockTTL: ttl})
			w, _ := waiterStore(t, prefix, redisstore.Options{})
			const key = "lost"
			unlock := lockWithin(t, holder, key, 2*time.Second, "holder")
			defer unlock()
			done := lockAsync(w, context.Background(), key)
			eventually(t, "the waiter subscribed", func() bool { return redisstore.Wake(w).Live == 1 })
			if how == "release unannounced" {
				redisstore.DropPublish(holder, true)
				unlock()
			} else {
				redisstore.PauseRenewal(holder, true)
			}
			var r lockResult
			bounded(t, 10*time.Second, "the waiter's Lock", func() { r = <-done })
			if r.err != nil {
				t.Fatalf("waiter: %v", r.err)
			}
			r.unlock()
			if n := redisstore.Wake(w).Woken; n != 0 {
				t.Errorf("the waiter heard %d wake-ups, want none (the test lost them)", n)
			}
		})
	}
}

// TestWaitersInTurn: waiters of one key in two processes, four goroutines
// each, all get the lock in turn, one at a time, woken by releases.
func TestWaitersInTurn(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	stores := []*redisstore.Store{storeWith(t, c, prefix, redisstore.Options{})}
	w, _ := waiterStore(t, prefix, redisstore.Options{})
	stores = append(stores, w)
	const key, each, rounds = "turns", 4, 3
	var inside, most, total atomic.Int64
	var wg sync.WaitGroup
	for _, s := range stores {
		for range each {
			wg.Go(func() {
				for range rounds {
					if !lockInTurn(t, s, key, &inside, &most) {
						return
					}
					total.Add(1)
				}
			})
		}
	}
	wg.Wait()
	if got, want := total.Load(), int64(len(stores)*each*rounds); got != want {
		t.Errorf("%d locks taken, want %d", got, want)
	}
	if m := most.Load(); m != 1 {
		t.Errorf("%d goroutines held the lock at once, want 1", m)
	}
	var woken int64
	for _, s := range stores {
		woken += redisstore.Wake(s).Woken
		eventually(t, "the table is empty", func() bool { return redisstore.Wake(s).Channels == 0 })
	}
	if woken == 0 {
		t.Errorf("no waiter heard a release")
	}
}

// lockInTurn locks key, counting the holders inside and the most at once,
// and unlocks it.
func lockInTurn(t *testing.T, s *redisstore.Store, key string, inside, most *atomic.Int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Error(err)
		return false
	}
	n := inside.Add(1)
	for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
	}
	time.Sleep(time.Millisecond)
	inside.Add(-1)
	unlock()
	return true
}

// TestWaitersShareConnection: waiters of many keys in one Store share one
// pub/sub connection, each key's channel subscribed once; each gets its
// lock when its key's holder releases it; once none waits, the connection
// is closed.
func TestWaitersShareConnection(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	holder := storeWith(t, c, prefix, redisstore.Options{})
	w, wc := waiterStore(t, prefix, redisstore.Options{})
	redisstore.SetWakeLinger(w, 0)
	const n = 20
	var unlocks []func()
	var dones []<-chan lockResult
	for i := range n {
		key := "shared-" + strconv.Itoa(i)
		unlocks = append(unlocks, lockWithin(t, holder, key, 2*time.Second, "holder"))
		dones = append(dones, lockAsync(w, context.Background(), key))
	}
	eventually(t, "every waiter subscribed", func() bool { return redisstore.Wake(w).Live == n })
	if st := redisstore.Wake(w); st.Conns != 1 || st.Opened != 1 {
		t.Errorf("%d waiters: %d pub/sub connections open, %d opened, want 1 and 1", n, st.Conns, st.Opened)
	}
	if a := wc.PoolStats().PubSubStats.Active; a != 1 {
		t.Errorf("%d waiters: the client has %d pub/sub connections, want 1", n, a)
	}
	for i := range n {
		if got := numSub(c, redisstore.WakeChannel(w, "shared-"+strconv.Itoa(i))); got != 1 {
			t.Errorf("key %d: Redis has %d subscribers of its channel, want 1", i, got)
		}
	}
	releaseInTurn(t, unlocks, dones)
	if st := redisstore.Wake(w); st.Woken == 0 {
		t.Errorf("no waiter heard its release")
	}
	eventually(t, "the pub/sub connection is closed", func() bool {
		return redisstore.Wake(w).Conns == 0 && wc.PoolStats().PubSubStats.Active == 0
	})
}

// TestWaitChurn: waiters of one key that give up at once, on many
// goroutines, leave the table and Redis without a subscription, and a
// waiter that stays is still woken by the release.
func TestWaitChurn(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	holder := storeWith(t, c, prefix, redisstore.Options{})
	w, _ := waiterStore(t, prefix, redisstore.Options{})
	const key = "churn"
	unlock := lockWithin(t, holder, key, 2*time.Second, "holder")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 25 {
				ctx, cancel := context.WithCancel(context.Background())
				if (i+j)%3 == 0 {
					cancel()
				} else {
					time.AfterFunc(time.Duration(j%4)*time.Millisecond, cancel)
				}
				if _, err := w.Lock(ctx, key); !errors.Is(err, context.Canceled) {
					t.Errorf("Lock cancelled: got %v, want an error wrapping context.Canceled", err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	eventually(t, "the table is empty", func() bool { return redisstore.Wake(w).Channels == 0 })
	eventually(t, "Redis has no subscriber", func() bool { return numSub(c, redisstore.WakeChannel(w, key)) == 0 })
	done := lockAsync(w, context.Background(), key)
	eventually(t, "the waiter subscribed", func() bool { return redisstore.Wake(w).Live == 1 })
	unlock()
	var r lockResult
	bounded(t, 10*time.Second, "the last waiter", func() { r = <-done })
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.unlock()
	if redisstore.Wake(w).Woken == 0 {
		t.Errorf("the last waiter did not hear the release")
	}
}

// TestWaitWithoutPubSub: where the store has no pub/sub (a Ring client),
// or Redis refuses it (an ACL user without channels, as a proxy that
// lacks pub/sub would), a waiter still gets the lock after its release,
// by polling, and releases still work.
func TestWaitWithoutPubSub(t *testing.T) {
	c := testClient(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": redisAddr()}, DialTimeout: time.Second})
	t.Cleanup(func() { ring.Close() })
	user := "refresh-test-" + randomHex(6)
	ctx := context.Background()
	clients := map[string]redis.UniversalClient{"ring": ring}
	// An ACL user without channels needs Redis 7 and the right to add one.
	if err := c.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "resetchannels", "+@all", "-@pubsub").Err(); err == nil {
		t.Cleanup(func() { c.Do(context.Background(), "ACL", "DELUSER", user) })
		deaf := redis.NewClient(&redis.Options{Addr: redisAddr(), Username: user, Password: "pw", ContextTimeoutEnabled: true, DialTimeout: time.Second})
		t.Cleanup(func() { deaf.Close() })
		clients["refused"] = deaf
	} else {
		t.Logf("no ACL user without pub/sub (%v): only the Ring case runs", err)
	}
	for name, client := range clients {
		t.Run(name, func(t *testing.T) {
			prefix := testPrefix(t, c)
			a := storeWith(t, client, prefix, redisstore.Options{})
			b := storeWith(t, client, prefix, redisstore.Options{})
			const key = "deaf"
			unlock := lockWithin(t, a, key, 2*time.Second, "holder")
			done := lockAsync(b, ctx, key)
			time.Sleep(20 * time.Millisecond) // let it wait; passes without, too
			unlock()
			var r lockResult
			bounded(t, 10*time.Second, "the waiter", func() { r = <-done })
			if r.err != nil {
				t.Fatal(r.err)
			}
			r.unlock()
			if st := redisstore.Wake(b); st.Live != 0 || st.Woken != 0 {
				t.Errorf("without pub/sub: %d channels live, %d wake-ups heard, want none", st.Live, st.Woken)
			}
			if n := c.Exists(ctx, redisstore.LockKey(a, key)).Val(); n != 0 {
				t.Errorf("the lock exists after both unlocked")
			}
		})
	}
}

// releaseInTurn calls each unlock, and checks that the matching waiter then
// gets its lock, and unlocks it.
func releaseInTurn(t *testing.T, unlocks []func(), dones []<-chan lockResult) {
	t.Helper()
	for i, unlock := range unlocks {
		unlock()
		var r lockResult
		bounded(t, 10*time.Second, fmt.Sprintf("waiter %d", i), func() { r = <-dones[i] })
		if r.err != nil {
			t.Fatalf("waiter %d: %v", i, r.err)
		}
		r.unlock()
	}
}

// TestClientClosedWhileWaiting: when the waiter's client is closed, its
// Lock returns an error, holding nothing, and the pub/sub connection is
// gone from the Store.
func TestClientClosedWhileWaiting(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	holder := storeWith(t, c, prefix, redisstore.Options{})
	w, wc := waiterStore(t, prefix, redisstore.Options{})
	const key = "closed"
	unlock := lockWithin(t, holder, key, 2*time.Second, "holder")
	defer unlock()
	done := lockAsync(w, context.Background(), key)
	eventually(t, "the waiter subscribed", func() bool { return redisstore.Wake(w).Live == 1 })
	wc.Close()
	var r lockResult
	bounded(t, 10*time.Second, "the waiter's Lock", func() { r = <-done })
	if r.err == nil || r.unlock != nil {
		t.Fatalf("Lock over a closed client: got error %v, want an error and no unlock", r.err)
	}
	eventually(t, "the connection is gone", func() bool {
		st := redisstore.Wake(w)
		return st.Conns == 0 && st.Channels == 0
	})
}

// TestWakeAfterReconnect: when Redis drops the pub/sub connection, go-redis
// reconnects and subscribes again, and waiters are still woken: by a
// release after that, and by one during the gap, whose message is lost
// (the new subscription's confirmation wakes them). The waiter's fallback
// and its holder's lease are a minute or more, so only wake-ups can give
// it the lock within the test's 10 s.
func TestWakeAfterReconnect(t *testing.T) {
	p := startPrivateRedis(t)
	c := newClient(p.addr)
	defer c.Close()
	holder := storeWith(t, c, "", redisstore.Options{LockTTL: 2 * time.Minute})
	wc := newClient(p.addr)
	defer wc.Close()
	w := storeWith(t, wc, "", redisstore.Options{LockRetry: time.Minute})
	ctx := context.Background()
	for _, when := range []string{"after", "during"} {
		key := "reconnect-" + when
		unlock := lockWithin(t, holder, key, 2*time.Second, "holder")
		done := lockAsync(w, ctx, key)
		eventually(t, "the waiter subscribed", func() bool { return redisstore.Wake(w).Live == 1 })
		if err := c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
		if when == "after" {
			eventually(t, "go-redis subscribed again", func() bool { return numSub(c, redisstore.WakeChannel(w, key)) == 1 })
		}
		unlock()
		var r lockResult
		bounded(t, 10*time.Second, "the waiter, release "+when+" the reconnection", func() { r = <-done })
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.unlock()
	}
}
