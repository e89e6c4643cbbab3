package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oauthkit/refresh"
)

// acquire locks key for a check that expects Lock to succeed promptly. The
// returned release calls unlock once and ends the context the lock was taken
// with (the engine, too, keeps that context alive while it holds the lock).
func acquire(t tb, l refresh.Locker, key, what string, o options) (release func(), ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.watchdog)
	var unlock func()
	var err error
	// The watchdog outlasts the context, so that a Lock that honours it
	// reports its error rather than a hang.
	if !within(2*o.watchdog, func() { unlock, err = l.Lock(ctx, key) }) {
		cancel()
		t.Errorf("%s: Lock(%q) did not return within %v (it ignores its context)", what, short(key), 2*o.watchdog)
		return nil, false
	}
	switch {
	case err != nil:
		cancel()
		t.Errorf("%s: Lock(%q): got error %q, want nil within %v", what, short(key), err, o.watchdog)
		return nil, false
	case unlock == nil:
		cancel()
		t.Errorf("%s: Lock(%q): got nil unlock func and nil error", what, short(key))
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { unlock(); cancel() }) }, true
}

// checkLockExclusion: goroutines that lock the same key hold it one at a
// time, and a lock does not keep another key from being locked.
func checkLockExclusion(t tb, l refresh.Locker, o options) {
	const workers, iterations = 8, 10
	ks := newKeyspace(t)
	key := ks.key("lock")

	var p exclusionProbe
	f := &failures{limit: 10}
	finished := within(o.slow, func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range workers {
			wg.Go(func() {
				<-start
				for range iterations {
					ctx, cancel := context.WithTimeout(context.Background(), o.slow)
					unlock, err := l.Lock(ctx, key)
					if err != nil || unlock == nil {
						cancel()
						f.add("Lock(%q): got error %s and unlock func %s, want nil and a func", key, quoteErr(err), nilness(unlock))
						return
					}
					p.hold()
					unlock()
					cancel()
				}
			})
		}
		close(start)
		wg.Wait()
	})
	f.report(t)
	if !finished {
		t.Errorf("%d goroutines × %d Lock(%q) and unlock did not finish within %v", workers, iterations, key, o.slow)
		return
	}
	if m := p.most.Load(); m > 1 {
		t.Errorf("Lock(%q): got %d goroutines holding the lock at once, want at most 1", key, m)
	}
	if got, want := p.counter.Load(), int64(workers*iterations); got != want {
		t.Errorf("counter incremented under Lock(%q): got %d, want %d (increments were lost)", key, got, want)
	}

	// Independence: while one key is held, another can be locked.
	release, ok := acquire(t, l, key, "first key", o)
	if !ok {
		return
	}
	defer release()
	other := ks.key("other")
	if release2, ok := acquire(t, l, other, fmt.Sprintf("while %q is held, another key", key), o); ok {
		release2()
	}
}

// checkLockContextEnd: a Lock that waits behind a holder returns, when its
// context's deadline passes, an error wrapping context.DeadlineExceeded, and
// holds nothing afterwards.
func checkLockContextEnd(t tb, l refresh.Locker, o options) {
	lockWaitEnds(t, l, o, false)
}

// checkLockCancel: as checkLockContextEnd, with a context that is cancelled
// and context.Canceled.
func checkLockCancel(t tb, l refresh.Locker, o options) {
	lockWaitEnds(t, l, o, true)
}

func lockWaitEnds(t tb, l refresh.Locker, o options, cancelled bool) {
	t.Helper()
	ks := newKeyspace(t)
	key := ks.key("lock")
	release, ok := acquire(t, l, key, "first holder", o)
	if !ok {
		return
	}
	defer release()

	var (
		ctx    context.Context
		cancel context.CancelFunc
		want   error
		how    string
	)
	if cancelled {
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(o.lockWait, cancel)
		want, how = context.Canceled, "cancelled"
	} else {
		ctx, cancel = context.WithTimeout(context.Background(), o.lockWait)
		want, how = context.DeadlineExceeded, "timed out"
	}
	defer cancel()

	var unlock func()
	var err error
	if !within(o.watchdog, func() { unlock, err = l.Lock(ctx, key) }) {
		t.Errorf("Lock(%q) waiting behind a holder, with a context %s after %v: did not return within %v",
			key, how, o.lockWait, o.watchdog)
		return
	}
	if err == nil {
		t.Errorf("Lock(%q) while another goroutine held the lock: got nil error, want one wrapping %q", key, want)
		if unlock != nil {
			unlock()
		}
		return
	}
	if !errors.Is(err, want) {
		t.Errorf("Lock(%q) with a context %s while waiting: got error %q, want one wrapping %q", key, how, err, want)
	}

	// The failed Lock holds nothing: once the holder unlocks, the lock is
	// free at once.
	release()
	if release2, ok := acquire(t, l, key, "after a Lock that failed and the holder's unlock", o); ok {
		release2()
	}
}

// checkLockReacquire: a key can be locked again after its unlock, many
// times.
func checkLockReacquire(t tb, l refresh.Locker, o options) {
	ks := newKeyspace(t)
	key := ks.key("lock")
	for _, what := range []string{"first Lock", "second Lock after unlock", "third Lock after unlock"} {
		release, ok := acquire(t, l, key, what, o)
		if !ok {
			return
		}
		release()
	}
}

func nilness(f func()) string {
	if f == nil {
		return "nil"
	}
	return "non-nil"
}
