package pgstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/pgstore"
)

// TestTryLock: TryLock takes a free lock, reports a held one (held by
// another store or by the same one) with false and no error, holding
// nothing, and takes it again after unlock.
func TestTryLock(t *testing.T) {
	a, b := twoStores(t)
	admin := testPool(t)
	const key = "alice"
	id := lockID(t, a, key)

	unlock, ok, err := a.TryLock(ctx5s(t), key)
	if err != nil || !ok || unlock == nil {
		t.Fatalf("TryLock of a free lock: %v, %v, %v; want an unlock, true, nil", unlock != nil, ok, err)
	}
	t.Cleanup(unlock)
	pid := holder(t, admin, id)
	for _, s := range []struct {
		name string
		s    *pgstore.Store
	}{{"another store", b}, {"the holding store", a}} {
		u, ok, err := s.s.TryLock(ctx5s(t), key)
		if u != nil || ok || err != nil {
			t.Errorf("TryLock from %s while held: %v, %v, %v; want nil, false, nil", s.name, u != nil, ok, err)
		}
	}
	if granted, waiting := lockSessions(t, admin, id); len(granted) != 1 || granted[0] != pid || len(waiting) != 0 {
		t.Errorf("after the failed TryLocks: held by %v, waiting %v; want only %d", granted, waiting, pid)
	}
	unlock()
	ub, ok, err := b.TryLock(ctx5s(t), key)
	if err != nil || !ok {
		t.Fatalf("TryLock after unlock: %v, %v", ok, err)
	}
	if u, err := lockWithin(a, key, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Errorf("Lock while TryLock holds: %v, want DeadlineExceeded", err)
	}
	ub()
	waitUnlocked(t, admin, id, 5*time.Second)
}

// TestTryLockContextEnded: a TryLock with an ended context returns an
// error wrapping the context's, and holds nothing.
func TestTryLockContextEnded(t *testing.T) {
	a, _ := twoStores(t)
	admin := testPool(t)
	id := lockID(t, a, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u, ok, err := a.TryLock(ctx, "alice")
	if u != nil || ok || !errors.Is(err, context.Canceled) {
		t.Errorf("TryLock with a cancelled context: %v, %v, %v; want nil, false, an error wrapping context.Canceled", u != nil, ok, err)
	}
	if granted, waiting := lockSessions(t, admin, id); len(granted)+len(waiting) != 0 {
		t.Errorf("held by %v, waiting %v; want nobody", granted, waiting)
	}
}

// TestTryLockNoSlot: a store of 2 connections holds at most one lock;
// TryLock of another key then fails at once instead of waiting for the
// holder, and holds nothing.
func TestTryLockNoSlot(t *testing.T) {
	opts := pgstore.Options{Schema: testSchema(t)}
	s := migrated(t, testPool(t, maxConns(2)), opts)
	admin := testPool(t)
	hold(t, s, "alice")
	u, ok, err := s.TryLock(ctx5s(t), "bob")
	if u != nil || ok || err == nil || !strings.HasPrefix(err.Error(), "pgstore: try-lock in ") {
		t.Errorf("TryLock with no slot: %v, %v, %v; want nil, false, a pgstore try-lock error", u != nil, ok, err)
	}
	if granted, _ := lockSessions(t, admin, lockID(t, s, "bob")); len(granted) != 0 {
		t.Errorf("bob held by %v after the failed TryLock", granted)
	}
}
