package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
)

// tryLockResult is what one TryLock call returned.
type tryLockResult struct {
	unlock func()
	ok     bool
	err    error
}

// tryLock calls TryLock once, bounded by the watchdog: TryLock never waits
// for a holder, so one that does not return promptly is broken. It reports
// a failure, and returns false, if the call hung or its results contradict
// each other (ok without an unlock func, an unlock func without ok, ok with
// an error).
func tryLock(t tb, l refresh.TryLocker, ctx context.Context, key, what string, o options) (tryLockResult, bool) {
	t.Helper()
	var r tryLockResult
	if !within(o.watchdog, func() { r.unlock, r.ok, r.err = l.TryLock(ctx, key) }) {
		t.Errorf("%s: TryLock(%q) did not return within %v (it waits for the holder?)", what, short(key), o.watchdog)
		return r, false
	}
	switch {
	case r.ok && r.unlock == nil:
		t.Errorf("%s: TryLock(%q): got ok and a nil unlock func", what, short(key))
	case r.ok && r.err != nil:
		t.Errorf("%s: TryLock(%q): got ok and error %q", what, short(key), r.err)
		r.unlock()
	case !r.ok && r.unlock != nil:
		t.Errorf("%s: TryLock(%q): got not ok and a non-nil unlock func", what, short(key))
	default:
		return r, true
	}
	return r, false
}

// checkTryLockFree: TryLock of a free key takes the lock Lock takes (a
// Lock and another TryLock are kept out until unlock), and a key can be
// taken again after its unlock.
func checkTryLockFree(t tb, l refresh.TryLocker, o options) {
	key := newKeyspace(t).key("trylock")
	for _, what := range []string{"TryLock of a free key", "TryLock after unlock"} {
		r, good := tryLock(t, l, context.Background(), key, what, o)
		if !good {
			return
		}
		if !r.ok {
			t.Errorf("%s: TryLock(%q): got not ok and error %s, want the lock", what, short(key), quoteErr(r.err))
			return
		}
		if !lockedOut(t, l, key, what, o) {
			r.unlock()
			return
		}
		r.unlock()
	}
	// The lock is free again for Lock, too.
	if release, ok := acquire(t, l, key, "Lock after TryLock's unlock", o); ok {
		release()
	}
}

// lockedOut reports whether key, held by the caller, keeps out both a
// Lock (which waits until its context ends) and a TryLock (which returns
// not ok at once).
func lockedOut(t tb, l refresh.TryLocker, key, what string, o options) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.lockWait)
	defer cancel()
	var unlock func()
	var err error
	if !within(o.watchdog, func() { unlock, err = l.Lock(ctx, key) }) {
		t.Errorf("after %s: Lock(%q) with a context that ends after %v did not return within %v", what, short(key), o.lockWait, o.watchdog)
		return false
	}
	if err == nil {
		t.Errorf("after %s: Lock(%q) got the lock too, want an error once its context ended", what, short(key))
		if unlock != nil {
			unlock()
		}
		return false
	}
	r, good := tryLock(t, l, context.Background(), key, "second TryLock after "+what, o)
	switch {
	case !good:
		return false
	case r.ok:
		t.Errorf("after %s: a second TryLock(%q) got the lock too", what, short(key))
		r.unlock()
		return false
	case r.err != nil:
		t.Errorf("after %s: a second TryLock(%q): got error %q, want not ok and nil", what, short(key), r.err)
		return false
	}
	return true
}

// checkTryLockHeld: TryLock of a key that Lock holds returns not ok and a
// nil error without waiting for the holder, and leaves nothing behind.
func checkTryLockHeld(t tb, l refresh.TryLocker, o options) {
	key := newKeyspace(t).key("trylock")
	release, ok := acquire(t, l, key, "holder", o)
	if !ok {
		return
	}
	for range 3 {
		r, good := tryLock(t, l, context.Background(), key, "TryLock while Lock holds the key", o)
		switch {
		case !good:
			release()
			return
		case r.ok:
			t.Errorf("TryLock(%q) while Lock held it: got the lock, want not ok", short(key))
			r.unlock()
		case r.err != nil:
			t.Errorf("TryLock(%q) while Lock held it: got error %q, want not ok and nil", short(key), r.err)
		}
	}
	release()
	r, good := tryLock(t, l, context.Background(), key, "TryLock after the holder's unlock", o)
	switch {
	case !good:
	case !r.ok:
		t.Errorf("TryLock(%q) after the holder's unlock: got not ok and error %s, want the lock (a failed TryLock left something behind?)",
			short(key), quoteErr(r.err))
	default:
		r.unlock()
	}
}

// checkTryLockExclusion: goroutines that take one key, some with Lock and
// some with TryLock (trying again after a pause when it is held), hold it
// one at a time.
func checkTryLockExclusion(t tb, l refresh.TryLocker, o options) {
	const workers, iterations = 6, 10
	m := &mixedTaker{l: l, key: newKeyspace(t).key("trylock"), o: o, f: &failures{limit: 10}}
	var p exclusionProbe
	finished := within(2*o.slow, func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range iterations {
					unlock, ok := m.take(w%2 == 0)
					if !ok {
						return
					}
					p.hold()
					unlock()
				}
			})
		}
		wg.Wait()
	})
	m.f.report(t)
	switch {
	case !finished:
		t.Errorf("%d goroutines × %d Lock or TryLock(%q) did not finish within %v", workers, iterations, short(m.key), 2*o.slow)
	case p.most.Load() > 1:
		t.Errorf("Lock and TryLock(%q): got %d goroutines holding the lock at once, want at most 1", short(m.key), p.most.Load())
	case p.counter.Load() != workers*iterations:
		t.Errorf("counter incremented under Lock and TryLock(%q): got %d, want %d (increments were lost)",
			short(m.key), p.counter.Load(), workers*iterations)
	}
}

// mixedTaker takes a key with Lock or with TryLock.
type mixedTaker struct {
	l   refresh.TryLocker
	key string
	o   options
	f   *failures
}

// take takes the key with TryLock, trying again after a pause while it is
// held, if try is set, and with Lock otherwise.
func (m *mixedTaker) take(try bool) (unlock func(), ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), m.o.slow)
	defer cancel()
	if !try {
		u, err := m.l.Lock(ctx, m.key)
		if err != nil {
			m.f.add("Lock(%q): got error %s, want the lock", short(m.key), quoteErr(err))
		}
		return u, err == nil
	}
	for ctx.Err() == nil {
		u, ok, err := m.l.TryLock(ctx, m.key)
		switch {
		case err != nil:
			m.f.add("TryLock(%q): got error %s, want ok or not ok", short(m.key), quoteErr(err))
			return nil, false
		case ok:
			return u, true
		}
		time.Sleep(200 * time.Microsecond)
	}
	m.f.add("TryLock(%q): not taken within %v", short(m.key), m.o.slow)
	return nil, false
}

// exclusionProbe detects holders that overlap: hold counts the holders,
// and increments counter by a load and a store that only the lock keeps
// together, so that overlapping holders lose updates. (Atomic loads and
// stores rather than a plain int: a broken store then fails the check with
// a message, rather than a report of the race detector that fails the
// whole test binary.)
type exclusionProbe struct {
	holders, most atomic.Int32 // goroutines between Lock and unlock now; the largest value holders had
	counter       atomic.Int64
}

// hold is what a goroutine does while it holds the lock.
func (p *exclusionProbe) hold() {
	n := p.holders.Add(1)
	for m := p.most.Load(); n > m && !p.most.CompareAndSwap(m, n); m = p.most.Load() {
	}
	v := p.counter.Load()
	time.Sleep(100 * time.Microsecond) // let an intruder in, if the lock admits one
	p.counter.Store(v + 1)
	p.holders.Add(-1)
}

// checkTryLockContextEnded: TryLock with a context that has already ended
// returns promptly with the lock or with an error wrapping the context's;
// never "held" for a key nobody holds.
func checkTryLockContextEnded(t tb, l refresh.TryLocker, o options) {
	key := newKeyspace(t).key("trylock")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, good := tryLock(t, l, ctx, key, "TryLock with an ended context", o)
	switch {
	case !good:
		return
	case r.ok:
		r.unlock()
	case r.err == nil:
		t.Errorf("TryLock(%q) of a free key with an ended context: got not ok and nil error, want the lock or an error wrapping %q",
			short(key), context.Canceled)
	case !errors.Is(r.err, context.Canceled):
		t.Errorf("TryLock(%q) with an ended context: got error %q, want one wrapping %q", short(key), r.err, context.Canceled)
	}
	if release, ok := acquire(t, l, key, "Lock after a TryLock with an ended context", o); ok {
		release()
	}
}
