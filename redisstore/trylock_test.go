package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/oauthkit/refresh/redisstore"
)

// TestTryLock: TryLock takes a free lock, the lease Lock takes; it returns
// not ok and no error, at once, while another Store (another process) or
// this one holds it, and takes it again after unlock. One script run each.
func TestTryLock(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	var scripts scriptCounter
	ca := newClient(redisAddr())
	t.Cleanup(func() { ca.Close() })
	ca.AddHook(&scripts)
	a := storeWith(t, ca, prefix, redisstore.Options{})
	b := storeWith(t, c, prefix, redisstore.Options{})
	ctx := context.Background()
	const key = "try"

	unlock, ok, err := a.TryLock(ctx, key)
	if !ok || err != nil || unlock == nil {
		t.Fatalf("TryLock of a free key: got ok %v, error %v", ok, err)
	}
	if owner := c.Get(ctx, redisstore.LockKey(a, key)).Val(); owner == "" {
		t.Errorf("TryLock took the lock but its Redis key is empty")
	}
	for _, s := range []*redisstore.Store{a, b} {
		u, ok, err := s.TryLock(ctx, key)
		if ok || err != nil || u != nil {
			t.Errorf("TryLock of a held key: got ok %v, error %v, want not ok and nil", ok, err)
		}
	}
	// One script run each, and one more if Redis was sent the script.
	if n := scripts.n.Load(); n < 2 || n > 3 {
		t.Errorf("two TryLocks through a's client ran %d scripts, want 2 (3 if the script was loaded)", n)
	}
	lockFails(t, b, key, 50*time.Millisecond, "Lock while TryLock holds")
	unlock()
	u, ok, err := b.TryLock(ctx, key)
	if !ok || err != nil {
		t.Fatalf("TryLock after unlock: got ok %v, error %v", ok, err)
	}
	u()
}
