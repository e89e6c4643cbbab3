package redisstore_test

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// TestDeleteKeepsLock: Delete removes the token's hash, extras and all,
// and leaves the lock to the process that holds it; it also removes a
// value that is not a token.
func TestDeleteKeepsLock(t *testing.T) {
	c := testClient(t)
	holder := newStore(t, c, redisstore.Options{})
	other, err := redisstore.New(c, redisstore.Options{Prefix: redisstore.Prefix(holder)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := (&oauth2.Token{AccessToken: "at-" + randomHex(8), RefreshToken: "rt"}).WithExtra(map[string]any{"scope": "s"})
	if err := holder.Save(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}
	unlock, err := holder.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := other.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := c.Exists(ctx, redisstore.TokenKey(holder, "k")).Val(); n != 0 {
		t.Errorf("the token's hash still exists after Delete")
	}
	if n := c.Exists(ctx, redisstore.LockKey(holder, "k")).Val(); n != 1 {
		t.Errorf("the lock was deleted with the token")
	}
	if u, ok, err := other.TryLock(ctx, "k"); ok || err != nil {
		t.Errorf("TryLock after Delete while the lock was held: got %v, %v; want not ok", ok, err)
		if ok {
			u()
		}
	}
	if err := holder.CompareAndSwap(ctx, "k", tok, &oauth2.Token{AccessToken: "late"}); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("the holder's late save after Delete: got %v, want ErrConflict", err)
	}

	if err := c.Set(ctx, redisstore.TokenKey(holder, "corrupt"), "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, "corrupt"); err != nil {
		t.Errorf("Delete of a corrupt value: %v", err)
	}
	if _, err := other.Load(ctx, "corrupt"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load after Delete of a corrupt value: got %v, want ErrNotFound", err)
	}
}
