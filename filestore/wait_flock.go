//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore

import (
	"context"
	"os"
	"sync"
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

// waitFlock waits until f, the lock file at path, holds an exclusive flock,
// which it does not hold yet, or until ctx ends. On an error it holds nothing, and f is closed or
// will be (by an abandoned call of blockFlock).
//
// It waits in a blocking flock(2) (blockFlock), which the kernel wakes as
// soon as the holder unlocks, if one of the maxBlockedFlocks slots is free.
// If not (many waiters in this process, or waits abandoned behind a holder
// that does not let go), it polls: it tries without blocking after a pause
// that doubles from minPoll up to maxPoll, and takes a slot as soon as one
// is free again.
func waitFlock(ctx context.Context, f *os.File, path string) error {
	if takeSlot() {
		return blockFlock(ctx, f, path)
	}
	countPoll(1)
	slot, err := pollFlock(ctx, f)
	countPoll(-1)
	if slot {
		return blockFlock(ctx, f, path)
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

// blockFlock waits for an exclusive flock on f, the lock file at path, in
// a blocking flock(2) on a goroutine of its own (a flockCall), with the
// slot its caller took, which the call frees when it returns.
//
// flock(2) cannot be interrupted by a context, so when ctx ends first
// blockFlock returns at once and abandons the call: when it gets the lock
// (or fails), it releases the lock at once and closes f; TryLock waits
// past that moment (see tryFlockPast). Polling could do
// without the goroutine and the thread, but would wake a waiter up to
// maxPoll after the holder unlocks; a blocked call is woken by the kernel
// straight away. Watching the file for changes (inotify, kqueue) would be
// neither simpler nor the same on every platform that has flock.
func blockFlock(ctx context.Context, f *os.File, path string) error {
	c := &flockCall{f: f, path: path, done: make(chan error, 1), gone: make(chan struct{})}
	go c.run()
	select {
	case err := <-c.done:
		if err != nil {
			f.Close()
		}
		return err
	case <-ctx.Done():
	}
	if !c.abandon() {
		// The lock came as ctx ended. The caller gave up: let it go.
		<-c.done
		unlockFile(f)
	}
	return ctx.Err()
}

// A flockCall is a blocking flock(2) on f, the lock file at path, for a
// caller that may give up waiting (see blockFlock).
type flockCall struct {
	f     *os.File
	path  string
	state int           // waiting, delivered or abandoned; abandonedCalls.mu guards it
	done  chan error    // the call's result, if delivered
	gone  chan struct{} // closed once an abandoned call has released f
}

// States of a flockCall: the first to get there, the blocked call
// returning or its caller giving up, picks the last two.
const (
	waiting   = iota
	delivered // the call returned first: its caller gets the result
	abandoned // the caller gave up first: the call cleans up after itself
)

// abandonedCalls are the flockCalls of this process whose caller gave up,
// by lock file path, until they return and let go of the lock.
var abandonedCalls struct {
	mu sync.Mutex
	m  map[string]map[*flockCall]bool
}

// run makes the call, and delivers its result or, if the caller gave up,
// releases what it got.
func (c *flockCall) run() {
	defer releaseSlot()
	err := flock(c.f, syscall.LOCK_EX)
	abandonedCalls.mu.Lock()
	defer abandonedCalls.mu.Unlock()
	if c.state == waiting {
		c.state = delivered
		c.done <- err
		return
	}
	calls := abandonedCalls.m[c.path]
	delete(calls, c)
	if len(calls) == 0 {
		delete(abandonedCalls.m, c.path)
	}
	// With the mutex held, so that tryFlockPast cannot lock f again
	// between the release and the close. An error (there is no lock to
	// release, then) does not matter: no one waits for the result.
	unlockFile(c.f)
	close(c.gone)
}

// abandon gives up the call, unless it has returned already; it reports
// whether it did.
func (c *flockCall) abandon() bool {
	abandonedCalls.mu.Lock()
	defer abandonedCalls.mu.Unlock()
	if c.state != waiting {
		return false
	}
	c.state = abandoned
	if abandonedCalls.m == nil {
		abandonedCalls.m = make(map[string]map[*flockCall]bool)
	}
	if abandonedCalls.m[c.path] == nil {
		abandonedCalls.m[c.path] = make(map[*flockCall]bool)
	}
	abandonedCalls.m[c.path][c] = true
	return true
}

// tryFlockPast tries once to lock f, the lock file at path, like tryFlock,
// and if the lock is held by an abandoned call of this process, returns a
// channel closed once that call has let go of it.
//
// The kernel gives a blocked call the lock as soon as the holder unlocks,
// so for a moment after that the lock is held by no one but an abandoned
// call, which is about to release it. TryLock waits for that moment to
// pass rather than report held a lock that no caller holds. (Another
// process, or a Store over another spelling of the directory, sees the
// moment as a holder that takes the lock and lets it go at once.)
//
// It tells by trying the lock on each call's own open file description,
// which succeeds if the description holds it. If the lock is free, that
// takes it for the call, which finds it its own when the kernel wakes it.
// All this with abandonedCalls.mu held, which an abandoned call needs to
// let go: no call can let go between the tries.
func tryFlockPast(f *os.File, path string) (ok bool, gone <-chan struct{}, err error) {
	abandonedCalls.mu.Lock()
	defer abandonedCalls.mu.Unlock()
	if ok, err := tryFlock(f); ok || err != nil {
		return ok, nil, err
	}
	for c := range abandonedCalls.m[path] {
		if ok, _ := tryFlock(c.f); ok {
			return false, c.gone, nil
		}
	}
	return false, nil, nil
}
