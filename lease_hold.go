package refresh

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Token types of lease records: a lease held until its Expiry, and one
// given back.
const (
	leaseHeld     = "lease"
	leaseReleased = "released"
)

// maxLeaseRelease bounds the give-back of a lease by unlock, which must
// not block for long: if it fails, the lease expires anyway.
const maxLeaseRelease = time.Second

// leaseSeq numbers the records this process writes, so that no two are
// equal (CompareAndSwap compares AccessToken).
var leaseSeq atomic.Uint64

// newLeaseOwner returns a name no other LeaseLocker uses, in any process:
// host and process id, for a person who looks at the store, and 8 random
// bytes.
func newLeaseOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 8)
	crand.Read(b) // never fails (crypto/rand)
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + hex.EncodeToString(b)
}

// record returns a new lease record of kind (leaseHeld or leaseReleased)
// ending at until.
func (l *LeaseLocker) record(kind string, until time.Time) *oauth2.Token {
	id := l.owner + "#" + strconv.FormatUint(leaseSeq.Add(1), 10)
	return &oauth2.Token{AccessToken: id, TokenType: kind, Expiry: until}
}

// leaseLeft returns how long the lease record rec is held for by the clock
// now: zero or less if it was given back or has expired.
func leaseLeft(rec *oauth2.Token, now time.Time) time.Duration {
	if rec.TokenType != leaseHeld || rec.Expiry.IsZero() {
		return 0
	}
	return rec.Expiry.Sub(now)
}

// swap is the store's CompareAndSwap, with a panic of the store turned
// into an error (wrapping [ErrPanic]) whose outcome is unknown, as a lost
// reply's: the renewal runs on a goroutine of its own, where a panic would
// end the program.
func (l *LeaseLocker) swap(ctx context.Context, name string, old, new *oauth2.Token) (err error) {
	defer recovered(&err, "store CompareAndSwap")
	return l.store.CompareAndSwap(ctx, name, old, new)
}

// hold is a lease this process holds, or tries to take.
type hold struct {
	l         *LeaseLocker
	key, name string
	caller    context.Context    // Lock's, without its cancellation: for ReportStoreEvent
	stopRenew context.CancelFunc // ends the renewal
	mu        sync.Mutex         // protects the fields below; held across each write
	rec       *oauth2.Token      // the record last known written
	maybe     []*oauth2.Token    // records written since, whose writes are not known to have failed (at most maxMaybe)
	over      bool               // unlocked, or the lease was lost
}

// maxMaybe bounds hold.maybe: after that many renewals in a row whose
// outcome is unknown, the oldest is forgotten (and if it was the one
// written, the lease is taken for lost: it is about to expire anyway).
const maxMaybe = 4

func (l *LeaseLocker) newHold(key, name string) *hold {
	return &hold{l: l, key: key, name: name, rec: l.record(leaseHeld, time.Now().Add(l.ttl))}
}

// start begins the renewal of a lease just taken by a Lock called with
// ctx, and returns its unlock.
func (h *hold) start(ctx context.Context) (unlock func()) {
	h.caller = context.WithoutCancel(ctx)
	rctx, stop := context.WithCancel(context.Background())
	h.stopRenew = stop
	go h.renew(rctx)
	var once sync.Once
	return func() { once.Do(h.unlock) }
}

// renew extends the lease every third of the TTL until ctx ends or the
// lease is found lost. A renewal that fails is tried again at the next
// tick: the lease is still valid by then.
func (h *hold) renew(ctx context.Context) {
	every := h.l.ttl / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wctx, cancel := context.WithTimeout(ctx, every)
		lost := h.write(wctx, leaseHeld, time.Now().Add(h.l.ttl))
		cancel()
		if lost {
			h.lost()
			return
		}
	}
}

// write replaces the lease record with a new one of kind, unless the hold
// is over; a released record ends it. It reports whether the lease was
// found lost: the store holds neither the record last written nor the one
// whose write may have happened.
func (h *hold) write(ctx context.Context, kind string, until time.Time) (lost bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.over {
		return false
	}
	if kind == leaseReleased {
		defer func() { h.over = true }()
	}
	next := h.l.record(kind, until)
	for _, from := range append([]*oauth2.Token{h.rec}, h.maybe...) {
		err := h.l.swap(ctx, h.name, from, next)
		switch {
		case err == nil:
			h.rec, h.maybe = next, nil
			return false
		case !errors.Is(err, ErrConflict):
			// It may have been written: try from it too next time.
			h.maybe = append(h.maybe, next)[max(0, len(h.maybe)+1-maxMaybe):]
			return false
		}
	}
	return true
}

// lost reports that the lease expired and was taken while it was held, as
// an event of the engine that took the lock.
func (h *hold) lost() {
	h.mu.Lock()
	over := h.over
	h.over = true
	h.mu.Unlock()
	if !over {
		ReportStoreEvent(h.caller, StoreEvent{Op: "lock", What: "lease lost"})
		h.l.wake(h.key) // this process's waiters wait for another holder now
	}
}

// unlock stops the renewal, gives the lease back, and wakes this process's
// waiters.
func (h *hold) unlock() {
	h.stopRenew()
	h.release()
}

// release gives the lease back, within maxLeaseRelease or the TTL,
// whichever is shorter; if that fails, the lease expires by itself.
func (h *hold) release() {
	ctx, cancel := context.WithTimeout(context.Background(), min(maxLeaseRelease, h.l.ttl))
	defer cancel()
	if h.write(ctx, leaseReleased, time.Now()) && h.caller != nil {
		ReportStoreEvent(h.caller, StoreEvent{Op: "unlock", What: "lease lost"})
	}
	h.l.wake(h.key)
}
