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
	// firstPoll is the first pause of a Lock that waits; it doubles up
	// to Options.LockRetry. A lock is usually held for one call of the
	// token endpoint, so the first tries come soon.
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
// KEYS[1]: lock key. ARGV[1]: owner. ARGV[2]: lease in milliseconds.
var acquireScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
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

// releaseScript deletes the lock if it still holds this owner, and returns
// 1; otherwise (the lease expired, maybe another process holds the lock
// now) it changes nothing and returns 0.
//
// KEYS[1]: lock key. ARGV[1]: owner.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
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
// The lock is a lease: a Redis string, set only if absent, holding a random
// owner value and expiring after [Options.LockTTL]. While it is held a
// goroutine renews it every LockTTL/3, if the lock still holds the owner.
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
	wait := firstPoll
	for {
		ok, err := s.acquire(ctx, lk, owner)
		if err != nil {
			return nil, err
		}
		if ok {
			return s.hold(ctx, key, lk, owner), nil
		}
		// Jitter: a pause drawn from [wait/2, wait*3/2), so that waiters
		// do not poll in step; never below the floor, so that waiting
		// never becomes a busy loop.
		t := time.NewTimer(max(minLockRetry, wait/2+rand.N(wait)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("redisstore: lock %s: %w", lk, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, s.retry)
	}
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
	if ok, err := s.acquire(ctx, lk, owner); !ok || err != nil {
		return nil, false, err
	}
	return s.hold(ctx, key, lk, owner), true, nil
}

// acquire runs acquireScript once: it reports whether owner now holds the
// lock lk. If the script fails, the lock may have been taken although the
// reply was lost: acquire gives it back rather than leave it until its
// lease ends, and returns the error, or ctx's if ctx ended.
func (s *Store) acquire(ctx context.Context, lk, owner string) (bool, error) {
	ttl := strconv.FormatInt(s.ttl.Milliseconds(), 10)
	n, err := acquireScript.Run(ctx, s.client, []string{lk}, owner, ttl).Int()
	if err != nil {
		go s.release(lk, owner)
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return false, fmt.Errorf("redisstore: lock %s: %w", lk, err)
	}
	return n == 1, nil
}

// lease is a lock held by this process.
type lease struct {
	s                *Store
	key, lk, owner   string
	caller           context.Context    // Lock's, without its cancellation: for refresh.ReportStoreEvent
	stop             context.CancelFunc // ends the renewal
	stopped, lostOne atomic.Bool        // unlock was called; LeaseLost was called
}

// hold starts the renewal of a lock just taken, by a Lock called with
// caller, and returns its unlock.
func (s *Store) hold(caller context.Context, key, lk, owner string) (unlock func()) {
	ctx, stop := context.WithCancel(context.Background())
	l := &lease{s: s, key: key, lk: lk, owner: owner, caller: context.WithoutCancel(caller), stop: stop}
	go l.renew(ctx)
	var once sync.Once
	return func() { once.Do(l.unlock) }
}

// renew extends the lease every third of its duration until ctx ends or
// the lease is found lost. A renewal that fails (Redis unreachable) is
// tried again at the next tick: the lease may still be valid by then.
func (l *lease) renew(ctx context.Context) {
	every := l.s.ttl / 3
	ttl := strconv.FormatInt(l.s.ttl.Milliseconds(), 10)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if l.s.renewPaused.Load() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		n, err := renewScript.Run(rctx, l.s.client, []string{l.lk}, l.owner, ttl).Int()
		cancel()
		if err == nil && n == 0 {
			if !l.stopped.Load() { // else unlock's release came first
				l.lost()
			}
			return
		}
	}
}

// unlock stops the renewal and deletes the lock if it is still this
// lease's. It does not wait for a renewal in flight: one that reaches Redis
// after the delete finds another owner, or none, and changes nothing.
func (l *lease) unlock() {
	l.stopped.Store(true)
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
	n, err := releaseScript.Run(ctx, s.client, []string{lk}, owner).Int()
	return err != nil || n == 1
}
