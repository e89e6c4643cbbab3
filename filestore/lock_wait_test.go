//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

var _ refresh.TryLocker = (*filestore.Store)(nil)

// These tests count and compare outcomes; the times in them only bound how
// long a test may hang.

// awaitBlocked waits until n blocking flock calls are in progress in this
// process (abandoned ones included), or fails the test.
func awaitBlocked(t *testing.T, n int) {
	t.Helper()
	await(t, fmt.Sprintf("%d blocking flock calls", n), func() bool {
		now, _ := filestore.BlockedFlocks()
		return now == n
	})
}

// awaitPolling waits until n waits are polling in this process, or fails
// the test.
func awaitPolling(t *testing.T, n int) {
	t.Helper()
	await(t, fmt.Sprintf("%d polling waits", n), func() bool { return filestore.PollingWaits() == n })
}

// await waits until cond holds, or fails the test after a while.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
	}
}

// otherStore returns a second Store over dir, which the lock treats as
// another process.
func otherStore(t *testing.T, dir string) *filestore.Store {
	t.Helper()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mustTryLock calls s.TryLock(key) and fails the test on an error.
func mustTryLock(t *testing.T, s *filestore.Store, key string) (unlock func(), ok bool) {
	t.Helper()
	unlock, ok, err := s.TryLock(context.Background(), key)
	if err != nil {
		t.Fatalf("TryLock(%q): %v", key, err)
	}
	if ok != (unlock != nil) {
		t.Fatalf("TryLock(%q): ok %v with unlock %p", key, ok, unlock)
	}
	return unlock, ok
}

// lockAsync starts s.Lock(ctx, key) on a goroutine and returns a channel
// that gets its error, after unlocking if it succeeded.
func lockAsync(ctx context.Context, s *filestore.Store, key string) <-chan error {
	c := make(chan error, 1)
	go func() {
		unlock, err := s.Lock(ctx, key)
		if err == nil {
			unlock()
		}
		c <- err
	}()
	return c
}

// TestLockCancelledWait: a Lock blocked behind another Store's holder
// returns an error wrapping context.Canceled when its context is
// cancelled, while the holder still holds; it holds nothing afterwards.
func TestLockCancelledWait(t *testing.T) {
	awaitBlocked(t, 0)
	holder, dir := newStore(t)
	unlock := mustLock(t, holder, "k")
	ctx, cancel := context.WithCancel(context.Background())
	got := lockAsync(ctx, otherStore(t, dir), "k")
	awaitBlocked(t, 1)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
	}
	unlock()
	awaitBlocked(t, 0) // the abandoned call got the lock and let it go
	u, ok := mustTryLock(t, otherStore(t, dir), "k")
	if !ok {
		t.Fatal("after a cancelled wait and the holder's unlock, TryLock found the lock held")
	}
	u()
}

// TestLockCancelledPoll: the same with no blocking flock allowed, when Lock
// polls.
func TestLockCancelledPoll(t *testing.T) {
	awaitBlocked(t, 0)
	defer filestore.SetMaxBlockedFlocks(0)()
	holder, dir := newStore(t)
	unlock := mustLock(t, holder, "k")
	ctx, cancel := context.WithCancel(context.Background())
	got := lockAsync(ctx, otherStore(t, dir), "k")
	awaitPolling(t, 1)
	cancel()
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
	}
	awaitPolling(t, 0)
	unlock()
	if _, peak := filestore.BlockedFlocks(); peak != 0 {
		t.Errorf("%d blocking flock calls with a bound of 0", peak)
	}
	u, ok := mustTryLock(t, otherStore(t, dir), "k")
	if !ok {
		t.Fatal("after a cancelled poll and the holder's unlock, TryLock found the lock held")
	}
	u()
}

// TestLockAbandonedWaits: waits abandoned behind a holder do not keep the
// lock from the next Lock once the holder unlocks, however the abandoned
// calls and the new one race for it.
func TestLockAbandonedWaits(t *testing.T) {
	awaitBlocked(t, 0)
	holder, dir := newStore(t)
	unlock := mustLock(t, holder, "k")
	const abandon = 4
	for i := 0; i < abandon; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		got := lockAsync(ctx, otherStore(t, dir), "k")
		awaitBlocked(t, i+1)
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Lock %d: got %v, want context.Canceled", i, err)
		}
	}
	unlock()
	u := mustLock(t, otherStore(t, dir), "k")
	u()
	awaitBlocked(t, 0)
}

// TestLockWaitBound: with more waiters than blocking flock slots, the
// others poll, take a slot when one is free, and all get the lock in turn,
// one at a time.
func TestLockWaitBound(t *testing.T) {
	awaitBlocked(t, 0)
	const slots, waiters, rounds = 2, 6, 5
	defer filestore.SetMaxBlockedFlocks(slots)()
	holder, dir := newStore(t)
	unlock := mustLock(t, holder, "k")
	var holders, maxHolders, total atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < waiters; w++ {
		s := otherStore(t, dir)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				u, err := s.Lock(context.Background(), "k")
				if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				for m := maxHolders.Load(); n > m && !maxHolders.CompareAndSwap(m, n); m = maxHolders.Load() {
				}
				total.Add(1)
				holders.Add(-1)
				u()
			}
		}()
	}
	awaitBlocked(t, slots)
	awaitPolling(t, waiters-slots)
	unlock()
	wg.Wait()
	if _, peak := filestore.BlockedFlocks(); peak != slots {
		t.Errorf("at most %d blocking flock calls at once, want %d", peak, slots)
	}
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("at most %d waiters held the lock at once, want 1", m)
	}
	if n := total.Load(); n != waiters*rounds {
		t.Errorf("the lock was taken %d times, want %d", n, waiters*rounds)
	}
}

// TestLockPollTakesSlot: a polling wait switches to a blocking flock as
// soon as a slot is free, here when the wait that held the only slot (for
// another key) gets its lock.
func TestLockPollTakesSlot(t *testing.T) {
	awaitBlocked(t, 0)
	defer filestore.SetMaxBlockedFlocks(1)()
	holder, dir := newStore(t)
	unlockA, unlockB := mustLock(t, holder, "a"), mustLock(t, holder, "b")
	waiter := otherStore(t, dir)
	gotA := make(chan func(), 1)
	go func() { gotA <- mustLockNoFatal(t, waiter, "a") }()
	awaitBlocked(t, 1)
	gotB := lockAsync(context.Background(), waiter, "b")
	awaitPolling(t, 1)
	unlockA()
	if u := <-gotA; u != nil {
		defer u()
	}
	awaitPolling(t, 0) // b's wait took the slot a's left
	awaitBlocked(t, 1)
	unlockB()
	if err := <-gotB; err != nil {
		t.Fatalf("Lock(b): %v", err)
	}
	if _, peak := filestore.BlockedFlocks(); peak != 1 {
		t.Errorf("at most %d blocking flock calls at once, want 1", peak)
	}
}

// mustLockNoFatal locks key of s like mustLock, from any goroutine: it
// reports an error with t.Error and returns nil then.
func mustLockNoFatal(t *testing.T, s *filestore.Store, key string) (unlock func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		t.Errorf("Lock(%q): %v", key, err)
	}
	return unlock
}

// TestTryLock: TryLock takes a free lock, finds a held one held (by
// another Store or the same, through TryLock or Lock) without waiting, and
// its lock keeps Lock out.
func TestTryLock(t *testing.T) {
	awaitBlocked(t, 0)
	s1, dir := newStore(t)
	s2 := otherStore(t, dir)
	unlock, ok := mustTryLock(t, s1, "k")
	if !ok {
		t.Fatal("TryLock of a free key: not ok")
	}
	for _, s := range []*filestore.Store{s2, s1} {
		if _, ok := mustTryLock(t, s, "k"); ok {
			t.Fatal("TryLock of a key held by TryLock: ok")
		}
	}
	if n, _ := filestore.BlockedFlocks(); n != 0 || filestore.PollingWaits() != 0 {
		t.Errorf("TryLock of a held key left %d blocking and %d polling waits", n, filestore.PollingWaits())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := <-lockAsync(ctx, s2, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a key held by TryLock: got %v, want context.DeadlineExceeded", err)
	}
	unlock()
	unlock() // harmless
	unlock2 := mustLock(t, s2, "k")
	if _, ok := mustTryLock(t, s1, "k"); ok {
		t.Fatal("TryLock of a key held by Lock: ok")
	}
	unlock2()
	awaitBlocked(t, 0) // the Lock that gave up has let go, if it got the lock
	unlock3, ok := mustTryLock(t, s1, "k")
	if !ok {
		t.Fatal("TryLock after the holder unlocked: not ok")
	}
	unlock3()
}

// TestTryLockCancelled: TryLock with an ended context fails with its error
// and holds nothing.
func TestTryLockCancelled(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	unlock, ok, err := s.TryLock(ctx, "k")
	if !errors.Is(err, context.Canceled) || ok || unlock != nil {
		t.Fatalf("TryLock with a cancelled context: got %p, %v, %v; want nil, false, context.Canceled", unlock, ok, err)
	}
	u, ok := mustTryLock(t, s, "k")
	if !ok {
		t.Fatal("after a cancelled TryLock, the key is held")
	}
	u()
}

// TestTryLockAfterAbandonedWait: once the holder unlocks, TryLock gets the
// lock even though a Lock that gave up is still blocked in flock(2) and
// the kernel hands the lock to it first.
func TestTryLockAfterAbandonedWait(t *testing.T) {
	awaitBlocked(t, 0)
	s, dir := newStore(t)
	other := otherStore(t, dir)
	for i := 0; i < 50; i++ {
		unlock := mustLock(t, s, "k")
		ctx, cancel := context.WithCancel(context.Background())
		got := lockAsync(ctx, other, "k")
		awaitBlocked(t, 1)
		cancel()
		if err := <-got; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Lock: got %v, want context.Canceled", err)
		}
		unlock()
		u, ok := mustTryLock(t, s, "k")
		if !ok {
			t.Fatalf("round %d: TryLock right after the holder's unlock found the lock held", i)
		}
		u()
		awaitBlocked(t, 0)
	}
}

// TestLockMixedExclusion: Lock, Locks that give up and TryLock, through
// two Stores, never hold a key together, and the abandoned calls all end.
func TestLockMixedExclusion(t *testing.T) {
	awaitBlocked(t, 0)
	s1, dir := newStore(t)
	stores := []*filestore.Store{s1, otherStore(t, dir)}
	const goroutines, rounds = 6, 40
	var holders, maxHolders atomic.Int32
	hold := func(u func()) {
		n := holders.Add(1)
		for m := maxHolders.Load(); n > m && !maxHolders.CompareAndSwap(m, n); m = maxHolders.Load() {
		}
		holders.Add(-1)
		u()
	}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		s := stores[g%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				switch (g + i) % 3 {
				case 0: // a Lock that may give up
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%4)*100*time.Microsecond)
					if u, err := s.Lock(ctx, "k"); err == nil {
						hold(u)
					}
					cancel()
				case 1:
					if u, ok, err := s.TryLock(context.Background(), "k"); err != nil {
						t.Error(err)
					} else if ok {
						hold(u)
					}
				case 2:
					hold(mustLockNoFatal(t, s, "k"))
				}
			}
		}()
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Errorf("at most %d goroutines held the lock at once, want 1", m)
	}
	awaitBlocked(t, 0)
	u, ok := mustTryLock(t, s1, "k")
	if !ok {
		t.Fatal("after every goroutine let go, TryLock found the lock held")
	}
	u()
}
