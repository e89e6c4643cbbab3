package redisstore

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/redis/go-redis/v9"
)

const (
	// firstPoll is the first pause of a Lock that waits without a
	// subscription (not yet confirmed, or no pub/sub); it doubles up to
	// Options.LockRetry. A lock is usually held for one call of the token
	// endpoint, so the first tries come soon.
	firstPoll = 2 * time.Millisecond

	// maxRelease bounds the release of a lock by unlock, which must not
	// block for long: if it fails, the lease expires anyway.
	maxRelease = time.Second
)

// acquireScript takes the lock if it is free, as SET NX PX does. It also
// succeeds, extending the lease, if the lock already holds this owner: that
// is this very call retried by the client after its reply was lost, and
// answering "taken" would make the caller wait for its own lease to expire.
//
// It returns {1, 0} if the caller holds the lock, and {0, PTTL} if another
// does, so that a waiter knows when the lease would expire (-1: never, a
// lock set by hand).
//
// KEYS[1]: lock key. ARGV[1]: owner. ARGV[2]: lease in milliseconds.
var acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}
`)

// renewScript extends the lease if the lock still holds this owner, and
// returns 1; otherwise (expired, taken by another) it changes nothing and
// returns 0.
//
// KEYS[1]: lock key. ARGV[1]: owner. ARGV[2]: lease in milliseconds.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lock if it still holds this owner, announces
// it on the lock's channel for the Locks that wait (with redis.pcall: a
// Redis without the command, such as SPUBLISH before 7.0, still releases),
// and returns 1; otherwise (the lease expired, maybe another process holds
// the lock now) it changes nothing and returns 0.
//
// KEYS[1]: lock key. ARGV[1]: owner. ARGV[2]: "publish", "spublish" or ""
// for none. ARGV[3]: the lock's channel.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] ~= '' then redis.pcall(ARGV[2], ARGV[3], '') end
  return 1
end
return 0
`)

// ownerPrefix starts every owner value of this process: host name and
// process id, for whoever looks at a lock in Redis to see who holds it.
var ownerPrefix = func() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid()) + ":"
}()

// newOwner returns a value that no other Lock call, in any process, uses:
// the lock holds it, and only its holder may renew or release the lock.
func newOwner() string {
	b := make([]byte, 16)
	crand.Read(b) // never fails (crypto/rand)
	return ownerPrefix + hex.EncodeToString(b)
}

// Lock implements [refresh.Locker]: it waits until the caller holds the
// lock of key, exclusive across every goroutine and process that uses a
// Store with the same prefix over the same Redis, or until ctx ends; then
// it returns an error wrapping ctx.Err(). If Redis fails, Lock returns its
// error at once.
//
// A Lock that finds the lock held waits for the holder's release to be
// announced on the lock's pub/sub channel, and tries again then; until its
// subscription is confirmed, and where there is no pub/sub, it polls. See
// the package documentation.
//
// The lock is a lease: a Redis string, set only if absent, holding a random
// owner value and expiring after [Options.LockTTL]. While it is held a
// timer renews it every LockTTL/3, if the lock still holds the owner.
// unlock stops the renewal and deletes the lock if it still holds the
// owner, within at most a second; if that fails, or if the process dies,
// the lease expires by itself. A lease can also expire while its holder
// runs (a paused process, Redis unreachable for longer than the lease):
// then another process may take the lock, which is why the engine saves
// with [Store.CompareAndSwap]. [Options.LeaseLost] reports it.
//
// The lock is not reentrant: a goroutine that calls Lock twice for one key
// without unlocking waits for itself until its context ends. Lock does not
// keep Save and CompareAndSwap out.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	lk := s.lockKey(key)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: lock %s: %w", lk, err)
	}
	owner := newOwner()
	ok, pttl, err := s.acquire(ctx, lk, owner)
	if err == nil && !ok {
		err = s.await(ctx, lk, owner, pttl)
	}
	if err != nil {
		return nil, err
	}
	return s.hold(ctx, key, lk, owner), nil
}

// TryLock implements [refresh.TryLocker]: it takes the lock of key, the
// lease Lock takes, if no one holds it, with one run of the script Lock
// runs, and returns nil, false and a nil error if someone does (this
// process included: the lock is not reentrant). If Redis fails it returns
// the error, wrapping ctx.Err() if ctx ended, and holds nothing.
func (s *Store) TryLock(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	lk := s.lockKey(key)
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("redisstore: lock %s: %w", lk, err)
	}
	owner := newOwner()
	if ok, _, err := s.acquire(ctx, lk, owner); !ok || err != nil {
		return nil, false, err
	}
	return s.hold(ctx, key, lk, owner), true, nil
}

// acquire runs acquireScript once: it reports whether owner now holds the
// lock lk, and if not, when the holder's lease expires (PTTL: -1 for
// never). If the script fails, the lock may have been taken although the
// reply was lost: acquire gives it back rather than leave it until its
// lease ends, and returns the error, or ctx's if ctx ended.
func (s *Store) acquire(ctx context.Context, lk, owner string) (ok bool, pttl time.Duration, err error) {
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	r, err := acquireScript.Run(ctx, s.client, []string{lk}, owner, ttl).Int64Slice()
	if err == nil && len(r) != 2 {
		err = fmt.Errorf("lock script answered %v", r)
	}
	if err != nil {
		go s.release(lk, owner)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return false, 0, fmt.Errorf("redisstore: lock %s: %w", lk, err)
	}
	return r[0] == 1, time.Duration(r[1]) * time.Millisecond, nil
}

// await waits until owner holds the lock lk, after a try that found it
// held with pttl left of its lease, or until ctx ends. It tries again when
// the lock's channel announces a release, when the lease is due to expire,
// and every wakeFallback in case a wake-up was lost; while it has no
// subscription confirmed (not yet, or no pub/sub), it polls as Lock used
// to, every few milliseconds up to LockRetry.
func (s *Store) await(ctx context.Context, lk, owner string, pttl time.Duration) error {
	sub, wake, live := s.wakes.join(ctx, lk+freeSuffix)
	defer s.wakes.leave(sub)
	p := pacer{next: firstPoll, retry: s.retry}
	t := time.NewTimer(p.pause(live, pttl))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("redisstore: lock %s: %w", lk, ctx.Err())
		case <-wake:
		case <-t.C:
		}
		wake, live = s.wakes.next(sub)
		ok, pttl, err := s.acquire(ctx, lk, owner)
		if ok || err != nil {
			return err
		}
		t.Reset(p.pause(live, pttl))
	}
}

// pacer draws the pauses of a waiting Lock.
type pacer struct{ next, retry time.Duration }

// pause returns how long to wait for a wake-up before trying again: with a
// subscription confirmed (live), up to wakeFallback (or LockRetry, if
// longer); without, the next of the pauses that double from firstPoll to
// LockRetry. Jitter draws it from [d/2, d*3/2), so that waiters do not try
// in step. It is never longer than the lease's pttl and a millisecond, and
// never shorter than the floor, so that waiting never becomes a busy loop.
func (p *pacer) pause(live bool, pttl time.Duration) time.Duration {
	d := max(wakeFallback, p.retry)
	if !live {
		d, p.next = p.next, min(2*p.next, p.retry)
	}
	d = d/2 + rand.N(d)
	if pttl >= 0 {
		d = min(d, pttl+time.Millisecond)
	}
	return max(minLockRetry, d)
}

// lease is a lock held by this process. Its renewal is a timer, not a
// goroutine: a goroutine runs only while a renewal does.
type lease struct {
	s                *Store
	key, lk, owner   string
	caller           context.Context    // Lock's, without its cancellation: for refresh.ReportStoreEvent
	ctx              context.Context    // ends at unlock, and with it a renewal in flight
	stop             context.CancelFunc // ends ctx
	stopped, lostOne atomic.Bool        // unlock was called; LeaseLost was called

	mu    sync.Mutex  // orders the timer's Reset by a renewal and its Stop by unlock
	timer *time.Timer // the next renewal; guarded by mu
}

// hold starts the renewal of a lock just taken, by a Lock called with
// caller, and returns its unlock.
func (s *Store) hold(caller context.Context, key, lk, owner string) (unlock func()) {
	ctx, stop := context.WithCancel(context.Background())
	l := &lease{s: s, key: key, lk: lk, owner: owner, caller: context.WithoutCancel(caller), ctx: ctx, stop: stop}
	l.mu.Lock()
	l.timer = time.AfterFunc(s.ttl/3, l.renew)
	l.mu.Unlock()
	var once sync.Once
	return func() { once.Do(l.unlock) }
}

// renew extends the lease, a third of its duration after the last
// renewal started, until unlock or the lease is found lost. A renewal
// that fails (Redis unreachable) is tried again at the next turn: the
// lease may still be valid by then.
func (l *lease) renew() {
	every := l.s.ttl / 3
	start := time.Now()
	if !l.s.renewPaused.Load() {
		ttl := strconv.FormatInt(l.s.ttl.Milliseconds(), 10)
		ctx, cancel := context.WithTimeout(l.ctx, every)
		n, err := renewScript.Run(ctx, l.s.client, []string{l.lk}, l.owner, ttl).Int()
		cancel()
		if err == nil && n == 0 {
			if !l.stopped.Load() { // else unlock's release came first
				l.lost()
			}
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped.Load() {
		l.timer.Reset(max(0, every-time.Since(start)))
	}
}

// unlock stops the renewal and deletes the lock if it is still this
// lease's. It does not wait for a renewal in flight: one that reaches Redis
// after the delete finds another owner, or none, and changes nothing.
func (l *lease) unlock() {
	l.mu.Lock()
	l.stopped.Store(true)
	l.timer.Stop()
	l.mu.Unlock()
	l.stop()
	if !l.s.release(l.lk, l.owner) {
		l.lost()
	}
}

// lost reports that the lease expired while it was held, once, and not
// after unlock when renewal finds the lock gone: to Options.LeaseLost and,
// as an event of the engine that took the lock, to its Config.OnEvent.
func (l *lease) lost() {
	if !l.lostOne.CompareAndSwap(false, true) {
		return
	}
	refresh.ReportStoreEvent(l.caller, refresh.StoreEvent{Op: "lock", What: "lease lost"})
	if f := l.s.leaseLost; f != nil {
		f(l.key)
	}
}

// release deletes the lock lk if it still holds owner, within maxRelease or
// the lease, whichever is shorter. It reports false only if Redis answered
// that the lock was not owner's; an error counts as true, as nothing is
// known then.
func (s *Store) release(lk, owner string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), min(maxRelease, s.ttl))
	defer cancel()
	cmd := publish(s.client)
	if s.dropPublish.Load() {
		cmd = ""
	}
	n, err := releaseScript.Run(ctx, s.client, []string{lk}, owner, cmd, lk+freeSuffix).Int()
	return err != nil || n == 1
}
