package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
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
//
// A lease is lost, as it should be, when its holder is stalled for longer
// than the lease: on a loaded machine (other test runs on 2 cores) that
// happens. So the test records when each of the holder's scripts ran, and
// watches for stalls of the process or of Redis; if the scripts did not
// keep the lease from one to the next and a stall explains it, it skips
// rather than fails: then losing the lock is what a lease does. Renewals
// that never run, or run too seldom, without a stall, still fail it.
func TestLeaseRenewal(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	lost := make(chan string, 1)
	const ttl = 500 * time.Millisecond
	var runs scriptRuns
	ca := newClient(redisAddr())
	t.Cleanup(func() { ca.Close() })
	ca.AddHook(&runs)
	a := storeWith(t, ca, prefix, redisstore.Options{LockTTL: ttl, LeaseLost: func(key string) { lost <- key }})
	b := storeWith(t, c, prefix, redisstore.Options{LockTTL: ttl})
	const key = "renewed"

	unlockA := lockWithin(t, a, key, 2*time.Second, "A")
	stalls := watchStalls(c)
	ctx, cancel := context.WithTimeout(context.Background(), 4*ttl)
	unlockB, err := b.Lock(ctx, key)
	cancel()
	end := time.Now() // B tried for the last time before this
	stall := stalls()
	pttl := c.PTTL(context.Background(), redisstore.LockKey(a, key)).Val()
	var problems []string
	if err == nil {
		unlockB()
		problems = append(problems, "B locked while A held the lock for 4 leases")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		problems = append(problems, fmt.Sprintf("B's Lock while A held the lock: got error %q, want one wrapping context.DeadlineExceeded", err))
	}
	if pttl <= 0 || pttl > ttl {
		problems = append(problems, fmt.Sprintf("lock's PTTL after 4 leases: %v, want 0 < PTTL <= %v", pttl, ttl))
	}
	unlockA()
	unlockA() // a second call does nothing
	select {
	case k := <-lost:
		problems = append(problems, fmt.Sprintf("LeaseLost(%q) called for a lease that was renewed and released", k))
	default:
	}
	if len(problems) > 0 {
		if late := runs.late(ttl, end); late != "" && stall >= ttl/3 {
			t.Skipf("the holder was stalled (%s; a stall of %v) for longer than its lease, so it lost the lock: %s",
				late, stall, strings.Join(problems, "; "))
		}
		for _, p := range problems {
			t.Error(p)
		}
	}
	lockWithin(t, b, key, 500*time.Millisecond, "B after A's unlock")()
}

// watchStalls measures, until the returned func is called, the longest
// turn of a loop that sleeps for a millisecond and pings Redis: how long
// this process or Redis was stalled at most. The func returns it.
func watchStalls(c redis.UniversalClient) func() time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for last := time.Now(); ctx.Err() == nil; {
			time.Sleep(time.Millisecond)
			c.Ping(ctx)
			now := time.Now()
			worst = max(worst, now.Sub(last))
			last = now
		}
		done <- worst
	}()
	return func() time.Duration { cancel(); return <-done }
}

// scriptRuns is a go-redis hook that records when each script a client
// ran with the answer 1 (lock taken, lease renewed) started and ended.
type scriptRuns struct {
	mu   sync.Mutex
	runs [][2]time.Time // start, end; guarded by mu
}

func (r *scriptRuns) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *scriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		if c, ok := cmd.(*redis.Cmd); ok && (cmd.Name() == "evalsha" || cmd.Name() == "eval") {
			if err == nil && answeredOne(c) {
				r.mu.Lock()
				r.runs = append(r.runs, [2]time.Time{start, time.Now()})
				r.mu.Unlock()
			}
		}
		return err
	}
}

// answeredOne reports whether a script answered 1, or a list that starts
// with 1 (the lock script: {1, 0} for taken).
func answeredOne(c *redis.Cmd) bool {
	if r, err := c.Int64Slice(); err == nil {
		return len(r) > 0 && r[0] == 1
	}
	n, _ := c.Int()
	return n == 1
}

func (r *scriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// late returns why the scripts that started before end (the lock taken,
// then renewals) may not have kept a lease of ttl until end, or "" if they
// did. Each ran on the server between its start and its end as seen here,
// so the lease was kept if each one ended within ttl of the start of the
// one before, and end is within ttl of the start of the last.
func (r *scriptRuns) late(ttl time.Duration, end time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) == 0 {
		return "no script ran"
	}
	prev := r.runs[0][0]
	for _, run := range r.runs[1:] {
		if !run[0].Before(end) {
			break
		}
		if gap := run[1].Sub(prev); gap >= ttl {
			return fmt.Sprintf("a renewal ended %v after the start of the one before", gap)
		}
		prev = run[0]
	}
	if gap := end.Sub(prev); gap >= ttl {
		return fmt.Sprintf("the last renewal started %v before the end of the wait", gap)
	}
	return ""
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

// TestHeldLocksNoGoroutine: a held lock costs a timer, not a goroutine
// (its renewal runs on one only while it runs).
func TestHeldLocksNoGoroutine(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	before := runtime.NumGoroutine()
	var unlocks []func()
	for i := range 100 {
		unlocks = append(unlocks, lockWithin(t, s, fmt.Sprint("held-", i), 2*time.Second, "Lock"))
	}
	after := runtime.NumGoroutine()
	for _, u := range unlocks {
		u()
	}
	if after-before >= 50 {
		t.Errorf("100 locks held: %d goroutines more than before, want a few at most", after-before)
	}
}
