//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/oauthkit/refresh"
)

var (
	_ refresh.Locker    = (*Store)(nil)
	_ refresh.TryLocker = (*Store)(nil)
)

// Polling intervals of the fallback wait (see waitFlock), used only when
// maxBlockedFlocks blocked flock calls are already waiting: the lock is
// tried again after a pause that doubles up to maxPoll.
const (
	minPoll = 1 * time.Millisecond
	maxPoll = 20 * time.Millisecond
)

// Lock implements [refresh.Locker]: it waits until the caller holds the
// refresh lock of key, exclusive across every goroutine and process that
// uses a Store over the same directory, or until ctx ends; then it returns
// an error wrapping ctx.Err() and holds nothing.
//
// The lock is an flock(2) lock on the key's ".lock" file. The kernel
// releases it when unlock is called or when the process dies. It is not
// reentrant: a goroutine that calls Lock twice for one key without
// unlocking waits for itself until its context ends. Lock does not keep
// Save and CompareAndSwap out: they take their own, short lock. A waiting
// Lock gets the lock as soon as the holder lets go (see waitFlock).
//
// Lock is only defined on platforms with flock(2); see the package
// documentation.
func (s *Store) Lock(ctx context.Context, key string) (unlock func(), err error) {
	f, err := lockFile(ctx, s.path(key, lockExt))
	if err != nil {
		return nil, err
	}
	return unlockOnce(f), nil
}

// TryLock implements [refresh.TryLocker]: it takes the refresh lock of key,
// the one Lock takes, if no one holds it, and returns its unlock func and
// true. If a goroutine or process holds it, TryLock returns nil, false and
// nil at once. An error (ctx ended, the lock file cannot be opened) holds
// nothing.
//
// TryLock is only defined where Lock is.
func (s *Store) TryLock(ctx context.Context, key string) (unlock func(), ok bool, err error) {
	path := s.path(key, lockExt)
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	f, err := openLockFile(path)
	if err != nil {
		return nil, false, err
	}
	ok, err = tryFlockNow(f, path)
	switch {
	case err != nil:
		f.Close()
		return nil, false, fmt.Errorf("filestore: lock %s: %w", path, err)
	case !ok:
		f.Close()
		return nil, false, nil
	}
	return unlockOnce(f), true, nil
}

// tryFlockNow tries to lock f, the lock file at path, without waiting for
// a holder. It only waits for an abandoned Lock of this process that holds
// the lock for a moment (see tryFlockPast).
func tryFlockNow(f *os.File, path string) (bool, error) {
	if ok, err := tryFlock(f); ok || err != nil {
		return ok, err
	}
	for {
		ok, gone, err := tryFlockPast(f, path)
		if gone == nil {
			return ok, err
		}
		<-gone
	}
}

// unlockOnce returns a func that releases the lock held through f the first
// time it is called, and does nothing after.
func unlockOnce(f *os.File) func() {
	var once sync.Once
	return func() { once.Do(func() { unlockFile(f) }) }
}

// lockWrite takes the write lock at path: an flock(2) lock on its own file,
// distinct from Lock's, because the engine calls CompareAndSwap while it
// holds the refresh lock through another file descriptor of this process,
// and flock locks held through two descriptors exclude each other.
func lockWrite(ctx context.Context, path string) (unlock func(), err error) {
	f, err := lockFile(ctx, path)
	if err != nil {
		return nil, err
	}
	return func() { unlockFile(f) }, nil
}

// lockFile opens the lock file at path and takes an exclusive flock on it,
// waiting (see waitFlock) until it succeeds or ctx ends.
//
// An flock belongs to the open file description, and lockFile opens the
// file anew each time, so two goroutines of one process exclude each other
// as two processes do. Lock files are never removed: removing one while a
// process holds or is opening it would let another process lock a new file
// of the same name at the same time.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	f, err := openLockFile(path)
	if err != nil {
		return nil, err
	}
	ok, err := tryFlock(f)
	if err == nil && !ok {
		err = waitFlock(ctx, f, path) // closes f (or has it closed) on failure
	} else if err != nil {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	return f, nil
}

// openLockFile opens the lock file at path, creating it with mode 0600 if
// needed. It must be a regular file.
func openLockFile(path string) (*os.File, error) {
	// os.OpenFile sets O_CLOEXEC: child processes do not inherit the lock.
	// A symbolic link in place of the lock file is refused, not followed:
	// following it would create a file, or open one read-write, anywhere
	// the process may write. So is anything else but a regular file.
	f, err := openRegular(path, os.O_RDWR|os.O_CREATE, 0o600)
	var notRegular *notRegularError
	switch {
	case errors.As(err, &notRegular):
		return nil, fmt.Errorf("filestore: refusing lock file: %w", err)
	case err != nil:
		return nil, fmt.Errorf("filestore: %w", err)
	}
	return f, nil
}

// tryFlock tries once to lock f exclusively; it reports false if another
// open file description holds a lock on the file.
func tryFlock(f *os.File) (bool, error) {
	err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == syscall.EWOULDBLOCK: // EAGAIN: the same value on these platforms
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// flock calls flock(2) on f with how, again if a signal interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	err = rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), how)
			if ferr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return ferr
}

// unlockFile releases the lock on f and closes it. Closing alone would
// release it too, unless a child process being started at that moment holds
// a copy of the descriptor until its exec; the explicit LOCK_UN does not
// wait for that. Errors are ignored: if anything fails, closing (or the
// process's exit) releases the lock.
func unlockFile(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.Flock(int(fd), syscall.LOCK_UN) })
	}
	f.Close()
}
