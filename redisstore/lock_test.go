package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// storeWith returns a store over c with the given prefix and options.
func storeWith(t *testing.T, c redis.UniversalClient, prefix string, opts redisstore.Options) *redisstore.Store {
	t.Helper()
	opts.Prefix = prefix
	s, err := redisstore.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func token(tag string) *oauth2.Token {
	n := randomHex(4)
	return &oauth2.Token{AccessToken: "at-" + tag + "-" + n, RefreshToken: "rt-" + tag + "-" + n, TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour).Round(0), ExpiresIn: 3600}
}

// lockWithin locks key, failing the test unless Lock succeeds within d.
func lockWithin(t *testing.T, s *redisstore.Store, key string, d time.Duration, what string) func() {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Fatalf("%s: Lock(%q): got error %q, want the lock within %v", what, key, err, d)
	}
	return unlock
}

// lockFails checks that key cannot be locked within d.
func lockFails(t *testing.T, s *redisstore.Store, key string, d time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err == nil {
		unlock()
		t.Errorf("%s: Lock(%q) succeeded, want it to wait until its %v deadline", what, key, d)
		return
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%s: Lock(%q): got error %q, want one wrapping context.DeadlineExceeded", what, key, err)
	}
}

// TestLeaseExpiryFencing: holder A, whose renewal is paused as in a frozen
// process, loses its lease; B takes the lock and saves; A's compare-and-swap
// with the token it read is refused, A learns that it lost the lease, and
// A's unlock leaves B's lock alone.
func TestLeaseExpiryFencing(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	lost := make(chan string, 4)
	a := storeWith(t, c, prefix, redisstore.Options{LockTTL: 300 * time.Millisecond, LeaseLost: func(key string) { lost <- key }})
	b := storeWith(t, c, prefix, redisstore.Options{LockTTL: 10 * time.Second})
	ctx := context.Background()
	const key = "fenced"
	t0 := token("0")
	if err := a.Save(ctx, key, t0); err != nil {
		t.Fatal(err)
	}

	redisstore.PauseRenewal(a, true)
	unlockA := lockWithin(t, a, key, 2*time.Second, "A")
	seen, err := a.Load(ctx, key)
	if err != nil {
		t.Fatal(err)
	}

	// B waits for A's lease to run out (300 ms), then holds the lock.
	unlockB := lockWithin(t, b, key, 5*time.Second, "B behind A's expiring lease")
	defer unlockB()
	if ttl := c.PTTL(ctx, redisstore.LockKey(b, key)).Val(); ttl < 5*time.Second {
		t.Errorf("lock's PTTL after B locked: %v, want B's lease of 10 s", ttl)
	}
	t1 := token("1")
	if err := b.CompareAndSwap(ctx, key, seen, t1); err != nil {
		t.Fatalf("B's CompareAndSwap: %v", err)
	}

	// A wakes up with a new token of its own: refused.
	if err := a.CompareAndSwap(ctx, key, seen, token("2")); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("A's CompareAndSwap after losing its lease: got %v, want an error wrapping refresh.ErrConflict", err)
	}
	if got, err := a.Load(ctx, key); err != nil || !refresh.SameToken(got, t1) {
		t.Errorf("stored token after A's refused swap: got %v, %v; want B's", got, err)
	}

	// A's renewal, running again, finds the lease gone.
	redisstore.PauseRenewal(a, false)
	select {
	case k := <-lost:
		if k != key {
			t.Errorf("LeaseLost(%q), want %q", k, key)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("LeaseLost was not called within 5 s of A's renewal resuming")
	}

	// A's unlock deletes nothing of B's, and reports nothing more.
	unlockA()
	if got := c.PTTL(ctx, redisstore.LockKey(b, key)).Val(); got <= 0 {
		t.Errorf("lock's PTTL after A's unlock: %v, want B's lease still there", got)
	}
	lockFails(t, a, key, 200*time.Millisecond, "while B holds the lock after A's unlock")
	if n := len(lost); n != 0 {
		t.Errorf("LeaseLost called %d more times after the first, want once per lease", n)
	}

	unlockB()
	if n := c.Exists(ctx, redisstore.LockKey(b, key)).Val(); n != 0 {
		t.Errorf("lock exists after B's unlock")
	}
	lockWithin(t, a, key, time.Second, "after B's unlock")()
}

// TestLeaseRenewal: a holder that keeps the lock for much longer than its
// lease keeps it, thanks to renewal, and releases it on unlock.
func TestLeaseRenewal(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	lost := make(chan string, 1)
	// Renewal is due every ttl/3; the lease is lost only if the renewing
	// goroutine or Redis stalls for about 2/3 of it. A lease of 500 ms was
	// lost on a 2-core machine at a load of 17; 1.5 s leaves a second.
	const ttl = 1500 * time.Millisecond
	a := storeWith(t, c, prefix, redisstore.Options{LockTTL: ttl, LeaseLost: func(key string) { lost <- key }})
	b := storeWith(t, c, prefix, redisstore.Options{LockTTL: ttl})
	const key = "renewed"

	unlockA := lockWithin(t, a, key, 2*time.Second, "A")
	lockFails(t, b, key, 3*ttl, "B while A holds the lock for 3 leases")
	if pttl := c.PTTL(context.Background(), redisstore.LockKey(a, key)).Val(); pttl <= 0 || pttl > ttl {
		t.Errorf("lock's PTTL after 3 leases: %v, want 0 < PTTL <= %v", pttl, ttl)
	}
	unlockA()
	unlockA() // a second call does nothing
	lockWithin(t, b, key, 500*time.Millisecond, "B after A's unlock")()
	if len(lost) != 0 {
		t.Errorf("LeaseLost(%q) called for a lease that was renewed and released", <-lost)
	}
}

// TestLockContextEnds: a Lock that waits returns promptly when its context
// is cancelled or its deadline passes, with the context's error, and holds
// nothing afterwards; one called with an ended context does not wait.
func TestLockContextEnds(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{LockTTL: 2 * time.Second})
	const key = "contended"
	unlock := lockWithin(t, s, key, 2*time.Second, "holder")

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() {
		u, err := s.Lock(ctx, key)
		if err == nil {
			u()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Lock cancelled while waiting: got %v, want an error wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock cancelled while waiting did not return within 5 s")
	}

	lockFails(t, s, key, 100*time.Millisecond, "with a deadline while waiting")

	ended, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := s.Lock(ended, key); !errors.Is(err, context.Canceled) {
		t.Errorf("Lock with an ended context: got %v, want an error wrapping context.Canceled", err)
	}

	unlock()
	if n := c.Exists(context.Background(), redisstore.LockKey(s, key)).Val(); n != 0 {
		t.Errorf("the lock exists after its holder's unlock: a Lock that gave up holds it")
	}
	lockWithin(t, s, key, 200*time.Millisecond, "after the holder's unlock")()
}

// scriptCounter is a go-redis hook that counts the scripts a client runs.
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestLockRetryFloor: whatever LockRetry New accepts, a Lock waiting
// behind a held lock tries at most once a millisecond. A LockRetry of a
// nanosecond used to make the wait a busy loop, thousands of commands in
// 300 ms.
func TestLockRetryFloor(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	const key, wait = "contended", 300 * time.Millisecond
	unlock := lockWithin(t, storeWith(t, c, prefix, redisstore.Options{}), key, 2*time.Second, "holder")
	defer unlock()
	for _, retry := range []time.Duration{time.Nanosecond, time.Microsecond, 999 * time.Microsecond, time.Millisecond} {
		var scripts scriptCounter
		waiter := newClient(redisAddr())
		t.Cleanup(func() { waiter.Close() })
		waiter.AddHook(&scripts)
		s, err := redisstore.New(waiter, redisstore.Options{Prefix: prefix, LockRetry: retry})
		if err != nil {
			if retry >= time.Millisecond || !strings.Contains(err.Error(), "LockRetry") {
				t.Errorf("New with LockRetry %v: %v", retry, err)
			}
			continue
		}
		lockFails(t, s, key, wait, "behind the holder")
		// One try at once, then one after each pause of at least 1 ms,
		// and one more if Redis had to be sent the script itself.
		n, most := scripts.n.Load(), int64(wait/time.Millisecond)+5
		if n > most {
			t.Errorf("LockRetry %v: %d lock attempts in a wait of %v, want at most %d", retry, n, wait, most)
		}
		t.Logf("LockRetry %v: %d lock attempts in %v", retry, n, wait)
	}
}
