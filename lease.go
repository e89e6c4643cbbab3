package refresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of [LeaseOptions].
const (
	DefaultLeaseTTL  = 30 * time.Second
	DefaultLeasePoll = 50 * time.Millisecond

	minLeaseTTL   = 30 * time.Millisecond // its renewal, every TTL/3, stays above 10 ms
	minLeasePoll  = time.Millisecond      // waiting never becomes a busy loop
	firstLeaseTry = 2 * time.Millisecond  // a lock is usually held for one token request
)

// LeaseOptions configure a [LeaseLocker]. The zero value is ready to use.
type LeaseOptions struct {
	// TTL is the lease of a lock: a holder that stops renewing it (dead,
	// frozen, cut off from the store) loses it after at most TTL, and a
	// waiter can take it then. The holder renews it every TTL/3. Optional:
	// zero means DefaultLeaseTTL (30 s); at least 30 ms.
	TTL time.Duration

	// Poll is the longest pause of a Lock that waits for a lock held by
	// another process: it tries again after 2 ms, then after pauses that
	// double up to Poll. Waiters in the process of the holder are woken by
	// its unlock at once. Optional: zero means DefaultLeasePoll (50 ms); at
	// least 1 ms.
	Poll time.Duration
}

// A LeaseLocker gives any [CompareAndSwapper] a lock: it is the store,
// made a [Locker] and a [TryLocker] by a lease record kept in the store
// itself, next to the key's token. A backend that can only Load, Save and
// CompareAndSwap (a table with conditional writes, a Kubernetes Secret and
// its resourceVersion, Vault KV's cas, a cloud secret manager) gets the
// guarantee of the Redis and PostgreSQL stores: of the processes that need
// a new token for a key at the same moment, one refreshes, and the others
// adopt its token.
//
// # The lease
//
// The lease of key is a token record stored under a name of its own (see
// below): its AccessToken names the holder (host, process, random) and a
// sequence number, its Expiry is the end of the lease by the holder's
// clock. Lock takes the lease with CompareAndSwap when the record is
// missing, released or expired, so of two processes that race for it one
// wins. The holder renews it every TTL/3, each time with a new record, and
// unlock replaces it with a released one; every write is a CompareAndSwap
// against the record last written, so a holder that lost its lease notices
// (and reports an [EventStore] event "lease lost") instead of overwriting
// the new holder's.
//
// # Limits
//
// Clocks: a waiter takes a lease whose Expiry has passed by its own clock.
// A renewed lease ends at least 2·TTL/3 after the holder's clock, so clocks
// of the processes sharing a store must agree within TTL/3 (10 s at the
// default TTL; NTP keeps them within milliseconds). A waiter whose clock
// runs behind waits longer, never shorter: it also takes a lease whose
// record it saw unchanged for a whole TTL by its own monotonic clock, since
// a live holder rewrites it every TTL/3.
//
// Pauses: a holder paused longer than about 2·TTL/3 (a stopped process, a
// long GC or VM pause, a store it cannot reach) loses its lease, and
// another process may refresh the key. The engine's save is a
// CompareAndSwap against the token it read, so the paused holder cannot
// overwrite the newer token; but if it was paused between reading the
// store and sending the refresh token, it sends a spent refresh token when
// it resumes, which a rotating server answers by revoking the token family.
// No lease can prevent that; a TTL much longer than any pause you expect
// makes it unlikely, at the cost of a longer wait after a holder dies.
//
// Wake-ups: a waiter in the holder's process (of the same LeaseLocker)
// is woken by the unlock and does not poll the store. A waiter in another
// process learns that the lock is free by trying again, after at most Poll
// (the store has no notifications), or when the lease it saw ends. Each try is a Load; a waiter takes the lock
// with a CompareAndSwap. The store keeps one lease record per key ever
// locked.
//
// Names: the lease of key is stored under "~lease~" + key, and a token
// whose key begins with "~" under "~" + key, so that no key's token and no
// lease ever share a name. Tokens saved under such keys before the store
// was wrapped are therefore not seen through it; every other key keeps its
// name.
type LeaseLocker struct {
	store CompareAndSwapper
	ttl   time.Duration
	poll  time.Duration
	owner string

	mu    sync.Mutex               // protects freed
	freed map[string]chan struct{} // key → closed when this process's holder unlocks it
}

var _ interface {
	TryLocker
	CompareAndSwapper
} = (*LeaseLocker)(nil)

// NewLeaseLocker returns store with a lease lock. It refuses a nil store
// and options out of range. The result has no Delete, whatever store has:
// for a store that can delete, [NewDeletingLeaseLocker] returns one that
// does.
func NewLeaseLocker(store CompareAndSwapper, opts LeaseOptions) (*LeaseLocker, error) {
	if store == nil {
		return nil, errors.New("refresh: NewLeaseLocker: nil store")
	}
	l := &LeaseLocker{store: store, ttl: opts.TTL, poll: opts.Poll, owner: newLeaseOwner()}
	if l.ttl == 0 {
		l.ttl = DefaultLeaseTTL
	}
	if l.poll == 0 {
		l.poll = DefaultLeasePoll
	}
	switch {
	case l.ttl < minLeaseTTL:
		return nil, fmt.Errorf("refresh: LeaseOptions.TTL %v is shorter than %v", l.ttl, minLeaseTTL)
	case l.poll < minLeasePoll:
		return nil, fmt.Errorf("refresh: LeaseOptions.Poll %v is shorter than %v", l.poll, minLeasePoll)
	}
	return l, nil
}

// tokenName and leaseName keep keys' tokens and leases apart in the store.
func tokenName(key string) string {
	if strings.HasPrefix(key, "~") {
		return "~" + key
	}
	return key
}

func leaseName(key string) string { return "~lease~" + key }

// Load implements [TokenStore].
func (l *LeaseLocker) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return l.store.Load(ctx, tokenName(key))
}

// Save implements [TokenStore].
func (l *LeaseLocker) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return l.store.Save(ctx, tokenName(key), tok)
}

// CompareAndSwap implements [CompareAndSwapper].
func (l *LeaseLocker) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return l.store.CompareAndSwap(ctx, tokenName(key), old, new)
}

// Lock implements [Locker]: it waits until the caller holds the lease of
// key or ctx ends (then its error wraps ctx.Err()). An error of the store
// ends it at once. See [LeaseLocker] for how the lease is taken, renewed
// and given back, and for its limits.
func (l *LeaseLocker) Lock(ctx context.Context, key string) (unlock func(), err error) {
	var seen sighting
	wait := firstLeaseTry
	for {
		freed := l.freedChan(key)
		unlock, until, err := l.try(ctx, key, &seen)
		if err != nil || unlock != nil {
			return unlock, err
		}
		// Jitter, so that waiters do not try in step; no later than the
		// lease's end; never below the floor, so that waiting never
		// becomes a busy loop.
		pause := max(minLeasePoll, min(wait/2+rand.N(wait), until))
		if seen.local {
			pause = max(minLeasePoll, until) // this process holds it: its unlock wakes us
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("refresh: lease lock: %w", ctx.Err())
		case <-freed:
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, l.poll)
	}
}

// TryLock implements [TryLocker]: one Load and, if the lease is free, one
// CompareAndSwap.
func (l *LeaseLocker) TryLock(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	unlock, _, err = l.try(ctx, key, new(sighting))
	return unlock, unlock != nil, err
}

// freedChan returns the channel that this process's holder of key closes
// when it unlocks, so that waiters here need not poll.
func (l *LeaseLocker) freedChan(key string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.freed == nil {
		l.freed = make(map[string]chan struct{})
	}
	ch, ok := l.freed[key]
	if !ok {
		ch = make(chan struct{})
		l.freed[key] = ch
	}
	return ch
}

// wake wakes this process's waiters of key.
func (l *LeaseLocker) wake(key string) {
	l.mu.Lock()
	ch, ok := l.freed[key]
	delete(l.freed, key)
	l.mu.Unlock()
	if ok {
		close(ch)
	}
}

// sighting is what a waiting Lock saw of a held lease: the record, and when
// (by the monotonic clock) it first saw it.
type sighting struct {
	rec   string
	since time.Time
	local bool // the holder is this LeaseLocker
}

// unchangedFor reports how long the lease record rec has been seen
// unchanged, remembering it if it is new.
func (s *sighting) unchangedFor(rec string, now time.Time) time.Duration {
	if rec != s.rec {
		s.rec, s.since = rec, now
	}
	return now.Sub(s.since)
}

// try tries once to take key's lease. If the lease is held, it returns a
// nil unlock and how long the lease has left at most, which bounds the
// next pause.
func (l *LeaseLocker) try(ctx context.Context, key string, seen *sighting) (unlock func(), left time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("refresh: lease lock: %w", err)
	}
	seen.local = false
	name := leaseName(key)
	cur, err := l.store.Load(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		cur = nil
	case err != nil:
		return nil, 0, leaseError(ctx, "read", err)
	}
	if cur != nil {
		if left := l.heldFor(cur, seen); left > 0 {
			return nil, left, nil
		}
	}
	h := l.newHold(key, name)
	switch err := l.swap(ctx, name, cur, h.rec); {
	case errors.Is(err, ErrConflict):
		return nil, 0, nil // another process took it first, or renewed it
	case err != nil:
		// The swap may have been done although its reply was lost: give
		// the lease back rather than leave it until it expires.
		go h.release()
		return nil, 0, leaseError(ctx, "take", err)
	}
	return h.start(ctx), 0, nil
}

// heldFor returns how long the lease record cur may still be held: until
// its Expiry by this process's clock, and no longer than a TTL after this
// waiter first saw it unchanged. Zero or less means it is free to take.
func (l *LeaseLocker) heldFor(cur *oauth2.Token, seen *sighting) time.Duration {
	now := time.Now()
	left := leaseLeft(cur, now)
	if left <= 0 {
		return 0
	}
	seen.local = strings.HasPrefix(cur.AccessToken, l.owner+"#")
	return min(left, l.ttl-seen.unchangedFor(cur.AccessToken, now))
}

// leaseError is the error of a Lock whose store call failed.
func leaseError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("refresh: lease lock: %w", ctx.Err())
	}
	return fmt.Errorf("refresh: lease lock: %s the lease: %w", what, err)
}
