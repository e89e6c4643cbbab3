package pgstore_test

// The listener that wakes waiting Locks. These tests check outcomes and
// counts, never durations: each waits for a state with a deadline that
// only a hang reaches.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// eventually waits until cond holds, failing the test if it does not
// within 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s, still not %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type lockResult struct {
	unlock func()
	err    error
}

// lockAsync calls s.Lock(ctx, key) in a goroutine. If the test ends
// before the result is received, a lock it got is released: a pool
// closes only when its connections are back.
func lockAsync(t *testing.T, ctx context.Context, s *pgstore.Store, key string) <-chan lockResult {
	done, fin := make(chan lockResult, 1), make(chan struct{})
	go func() {
		defer close(fin)
		u, err := s.Lock(ctx, key)
		done <- lockResult{u, err}
	}()
	t.Cleanup(func() {
		<-fin // t.Context() has ended
		select {
		case r := <-done:
			if r.unlock != nil {
				r.unlock()
			}
		default:
		}
	})
	return done
}

// hold locks key in s, and unlocks it when the test ends if it has not.
func hold(t *testing.T, s *pgstore.Store, key string) func() {
	t.Helper()
	unlock, err := s.Lock(ctx5s(t), key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	return unlock
}

// got returns the unlock func of a Lock that must succeed within 30 s.
func got(t *testing.T, done <-chan lockResult, what string) func() {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.unlock
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no lock within 30 s", what)
		return nil
	}
}

// waiting waits until s has n waiting Locks and its listener listens.
func waiting(t *testing.T, s *pgstore.Store, n int) pgstore.ListenerState {
	t.Helper()
	var st pgstore.ListenerState
	eventually(t, fmt.Sprintf("%d waiters with the listener listening", n), func() bool {
		st = pgstore.ListenerForTest(s)
		return st.Waiters == n && st.Listening
	})
	return st
}

// twoStores returns a store over a new table and another store over it
// with a pool of its own, as another process would have; o adjusts the
// options of the second.
func twoStores(t *testing.T, o ...func(*pgstore.Options)) (a, b *pgstore.Store) {
	opts := pgstore.Options{Schema: testSchema(t)}
	a = migrated(t, testPool(t, maxConns(16)), opts)
	for _, f := range o {
		f(&opts)
	}
	b, err := pgstore.New(testPool(t, maxConns(16)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestLockWokenByNotification: with a LockPoll of an hour, a waiter that
// the listener serves can only get the lock in time through the holder's
// notification.
func TestLockWokenByNotification(t *testing.T) {
	a, b := twoStores(t, func(o *pgstore.Options) { o.LockPoll = time.Hour })
	const key = "alice"
	for round := range 3 {
		unlock := hold(t, a, key)
		done := lockAsync(t, t.Context(), b, key)
		waiting(t, b, 1)
		unlock()
		got(t, done, fmt.Sprint("round ", round))()
	}
	if st := pgstore.ListenerForTest(b); st.Sessions != 1 {
		t.Errorf("listener sessions: %d, want 1", st.Sessions)
	}
}

// TestLockWaitCancelled: a Lock waiting for a notification returns at
// once when its context is cancelled, with an error wrapping
// context.Canceled, and holds nothing.
func TestLockWaitCancelled(t *testing.T) {
	a, b := twoStores(t, func(o *pgstore.Options) { o.LockPoll = time.Hour })
	admin := testPool(t)
	const key = "alice"
	id := lockID(t, a, key)
	unlock := hold(t, a, key)
	defer unlock()
	pid := holder(t, admin, id)
	ctx, cancel := context.WithCancel(context.Background())
	done := lockAsync(t, ctx, b, key)
	waiting(t, b, 1)
	cancel()
	select {
	case r := <-done:
		if !errors.Is(r.err, context.Canceled) || r.unlock != nil {
			t.Errorf("cancelled Lock: %v, unlock %v; want an error wrapping context.Canceled and no unlock", r.err, r.unlock != nil)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cancelled Lock did not return within 30 s")
	}
	if st := pgstore.ListenerForTest(b); st.Waiters != 0 {
		t.Errorf("waiters after the cancelled Lock: %d, want 0", st.Waiters)
	}
	if granted, waiting := lockSessions(t, admin, id); len(granted) != 1 || granted[0] != pid || len(waiting) != 0 {
		t.Errorf("after the cancelled Lock: held by %v, waiting %v; want only %d", granted, waiting, pid)
	}
}

// TestLockLostNotification: a holder that sends no notification (a
// release without one, or a session that was terminated) still lets a
// listening waiter take the lock, through the slow poll.
func TestLockLostNotification(t *testing.T) {
	for _, how := range []string{"silent unlock", "terminated session"} {
		t.Run(how, func(t *testing.T) {
			a, b := twoStores(t)
			pgstore.SilenceUnlockForTest(a)
			admin := testPool(t)
			const key = "alice"
			unlock := hold(t, a, key)
			done := lockAsync(t, t.Context(), b, key)
			waiting(t, b, 1)
			if how == "silent unlock" {
				unlock()
			} else {
				terminate(t, admin, holder(t, admin, lockID(t, a, key)))
			}
			got(t, done, "Lock after a release without notification")()
		})
	}
}

// TestListenerKilled: the listener's session is terminated while a Lock
// waits; the waiter still gets the lock when the holder unlocks, and the
// listener comes back on a new session and wakes later waiters.
func TestListenerKilled(t *testing.T) {
	a, b := twoStores(t)
	admin := testPool(t)
	const key = "alice"
	unlock := hold(t, a, key)
	done := lockAsync(t, t.Context(), b, key)
	st := waiting(t, b, 1)
	terminate(t, admin, int32(st.PID))
	unlock()
	got(t, done, "Lock after the listener was killed")()

	unlock = hold(t, a, key)
	done = lockAsync(t, t.Context(), b, key)
	eventually(t, "listening on a new session", func() bool {
		now := pgstore.ListenerForTest(b)
		return now.Listening && now.Sessions == 2 && now.PID != st.PID && now.Waiters == 1
	})
	unlock()
	got(t, done, "Lock after the listener came back")()
}

// TestLockManyWaiters: twelve Locks from three stores, with pools of their
// own, wait for one key at once; each gets the lock in turn, never two at
// a time, and the counter each increments under it ends right.
func TestLockManyWaiters(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	stores := []*pgstore.Store{migrated(t, testPool(t), opts)}
	for range 2 {
		s, err := pgstore.New(testPool(t), opts)
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	const key, per, rounds = "counter", 4, 3
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stores[0].Save(ctx, key, testToken("0")); err != nil {
		t.Fatal(err)
	}
	var inside, most atomic.Int32
	var wg sync.WaitGroup
	for _, s := range stores {
		for range per {
			wg.Go(func() {
				for range rounds {
					if err := increment(ctx, s, key, &inside, &most); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	tok, err := stores[0].Load(ctx, key)
	if want := testToken(fmt.Sprint(len(stores) * per * rounds)); err != nil || !refresh.SameToken(tok, want) {
		t.Errorf("counter: %v, %v; want %s", tok, err, want.AccessToken)
	}
	if m := most.Load(); m != 1 {
		t.Errorf("at most %d holders at a time, want 1", m)
	}
}

// increment locks key in s and replaces its token "at-N" with "at-N+1".
func increment(ctx context.Context, s *pgstore.Store, key string, inside, most *atomic.Int32) error {
	unlock, err := s.Lock(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	n := inside.Add(1)
	defer inside.Add(-1)
	for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
	}
	tok, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	var i int
	if _, err := fmt.Sscanf(tok.AccessToken, "at-%d", &i); err != nil {
		return err
	}
	return s.CompareAndSwap(ctx, key, tok, testToken(fmt.Sprint(i+1)))
}

// TestListenerShared: Locks waiting for eight keys of one store share one
// listener session, the only backend that listens to the table's channel.
func TestListenerShared(t *testing.T) {
	a, b := twoStores(t)
	admin := testPool(t)
	var unlocks []func()
	var dones []<-chan lockResult
	for i := range 8 {
		key := fmt.Sprint("key-", i)
		unlock := hold(t, a, key)
		unlocks = append(unlocks, unlock)
		dones = append(dones, lockAsync(t, t.Context(), b, key))
	}
	st := waiting(t, b, 8)
	channel, err := pgstore.ListenChannelForTest(ctx5s(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if pids := listeners(t, admin, channel); len(pids) != 1 || pids[0] != int32(st.PID) || st.Sessions != 1 {
		t.Errorf("backends listening: %v, sessions %d; want only the listener's %d, 1 session", pids, st.Sessions, st.PID)
	}
	for i, unlock := range unlocks {
		unlock()
		got(t, dones[i], fmt.Sprint("Lock of key-", i))()
	}
	if st := pgstore.ListenerForTest(b); st.Sessions != 1 {
		t.Errorf("listener sessions at the end: %d, want 1", st.Sessions)
	}
}

// listeners returns the backends whose last statement was the LISTEN of
// channel.
func listeners(t *testing.T, admin *pgxpool.Pool, channel string) []int32 {
	t.Helper()
	rows, err := admin.Query(ctx5s(t), "SELECT pid FROM pg_stat_activity WHERE query = $1", `LISTEN "`+channel+`"`)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int32
	for rows.Next() {
		var pid int32
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids
}

// TestListenerStopsWhenIdle: without waiters, the listener stops and
// closes its session; the next wait starts it again.
func TestListenerStopsWhenIdle(t *testing.T) {
	a, b := twoStores(t)
	pgstore.SetListenIdleForTest(b, 10*time.Millisecond)
	admin := testPool(t)
	channel, err := pgstore.ListenChannelForTest(ctx5s(t), b)
	if err != nil {
		t.Fatal(err)
	}
	const key = "alice"
	for round := 1; round <= 2; round++ {
		unlock := hold(t, a, key)
		done := lockAsync(t, t.Context(), b, key)
		if st := waiting(t, b, 1); st.Sessions != round {
			t.Errorf("round %d: listener sessions %d, want %d", round, st.Sessions, round)
		}
		unlock()
		got(t, done, "Lock")()
		eventually(t, "the listener stopped", func() bool {
			return !pgstore.ListenerForTest(b).Running && len(listeners(t, admin, channel)) == 0
		})
	}
}

// TestLockDeafListener: a listener that never hears its probe, as behind
// a transaction pooler, never counts as listening: waiters poll at
// LockPoll and get the lock.
func TestLockDeafListener(t *testing.T) {
	a, b := twoStores(t)
	pgstore.DeafListenerForTest(b)
	const key = "alice"
	for round := range 3 {
		unlock := hold(t, a, key)
		done := lockAsync(t, t.Context(), b, key)
		eventually(t, "waiting after a failed session", func() bool {
			st := pgstore.ListenerForTest(b)
			return st.Waiters == 1 && st.Failures > round
		})
		unlock()
		got(t, done, fmt.Sprint("round ", round))()
	}
	if st := pgstore.ListenerForTest(b); st.Sessions != 0 || st.Listening {
		t.Errorf("deaf listener: %+v, want no session that listened", st)
	}
}
