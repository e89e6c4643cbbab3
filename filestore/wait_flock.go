//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBlockedFlocks bounds the blocking flock(2) calls of blockFlock in
// progress at once in this process, each of which keeps an OS thread. A
// wait that finds them all taken polls instead (see waitFlock). Tests
// change it; it is read and written with flockSlots.mu held.
var maxBlockedFlocks = 16

// flockSlots counts the blocking flock calls in progress, abandoned ones
// included, against maxBlockedFlocks.
var flockSlots struct {
	mu   sync.Mutex
	used int // calls in progress
	peak int // the most there were at once, for tests
	poll int // waits polling instead, for tests
}

// takeSlot reserves a blocking flock call if fewer than maxBlockedFlocks
// are in progress, and reports whether it did.
func takeSlot() bool {
	flockSlots.mu.Lock()
	defer flockSlots.mu.Unlock()
	if flockSlots.used >= maxBlockedFlocks {
		return false
	}
	flockSlots.used++
	flockSlots.peak = max(flockSlots.peak, flockSlots.used)
	return true
}

// releaseSlot ends a blocking flock call reserved by takeSlot.
func releaseSlot() {
	flockSlots.mu.Lock()
	flockSlots.used--
	flockSlots.mu.Unlock()
}

// waitFlock waits until f holds an exclusive flock, which it does not hold
// yet, or until ctx ends. On an error it holds nothing, and f is closed or
// will be (by an abandoned call of blockFlock).
//
// It waits in a blocking flock(2) (blockFlock), which the kernel wakes as
// soon as the holder unlocks, if one of the maxBlockedFlocks slots is free.
// If not (many waiters in this process, or waits abandoned behind a holder
// that does not let go), it polls: it tries without blocking after a pause
// that doubles from minPoll up to maxPoll, and takes a slot as soon as one
// is free again.
func waitFlock(ctx context.Context, f *os.File) error {
	if takeSlot() {
		return blockFlock(ctx, f)
	}
	countPoll(1)
	slot, err := pollFlock(ctx, f)
	countPoll(-1)
	if slot {
		return blockFlock(ctx, f)
	}
	return err
}

// pollFlock is waitFlock's poll, with its contract. It stops early, with f
// open and not locked, when it took a slot for blockFlock.
func pollFlock(ctx context.Context, f *os.File) (slot bool, err error) {
	wait := minPoll
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return false, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxPoll)
		ok, err := tryFlock(f)
		switch {
		case err != nil:
			f.Close()
			return false, err
		case ok:
			return false, nil
		case takeSlot():
			return true, nil
		}
	}
}

// countPoll adds d to the count of polling waits.
func countPoll(d int) {
	flockSlots.mu.Lock()
	flockSlots.poll += d
	flockSlots.mu.Unlock()
}

// States of a blockFlock call, of which the first to get there (the
// blocked call returning, or ctx ending) picks the last two.
const (
	waiting   int32 = iota
	delivered       // the call returned first: blockFlock returns its result
	abandoned       // ctx ended first: the call cleans up when it returns
)

// blockFlock waits for an exclusive flock on f in a blocking flock(2), on
// a goroutine of its own, with the slot its caller took, which it releases.
//
// flock(2) cannot be interrupted by a context, so when ctx ends first
// blockFlock returns at once and leaves the call blocked: when it gets the
// lock (or fails), the goroutine releases it at once, closes f and frees
// the slot. Polling could do without the goroutine and the thread, but
// would wake a waiter up to maxPoll after the holder unlocks; a blocked
// call is woken by the kernel straight away. Watching the file for changes
// (inotify, kqueue) would be neither simpler nor the same on every
// platform that has flock.
func blockFlock(ctx context.Context, f *os.File) error {
	var state atomic.Int32
	done := make(chan error, 1)
	go func() {
		defer releaseSlot()
		err := flock(f, syscall.LOCK_EX)
		if state.CompareAndSwap(waiting, delivered) {
			done <- err
			return
		}
		release(f, err)
	}()
	select {
	case err := <-done:
		if err != nil {
			f.Close()
		}
		return err
	case <-ctx.Done():
	}
	if !state.CompareAndSwap(waiting, abandoned) {
		// The lock came as ctx ended. The caller gave up: let it go.
		release(f, <-done)
	}
	return ctx.Err()
}

// release closes f, the lock file of a flock call that returned err, and
// releases the lock first if the call took it.
func release(f *os.File, err error) {
	if err == nil {
		unlockFile(f)
		return
	}
	f.Close()
}
