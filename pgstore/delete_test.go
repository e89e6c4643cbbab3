package pgstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// TestDeleteKeepsLock: Delete removes the key's row and leaves its
// advisory lock to the session that holds it, whose late save is then
// refused; a key a text column cannot hold is refused before anything is
// sent.
func TestDeleteKeepsLock(t *testing.T) {
	ctx := ctx5s(t)
	pool := testPool(t, maxConns(4))
	opts := pgstore.Options{Schema: testSchema(t)}
	holder := migrated(t, pool, opts)
	other, err := pgstore.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	key, tok := randomKey("del"), testToken("del")
	if err := holder.Save(ctx, key, tok); err != nil {
		t.Fatal(err)
	}
	unlock, err := holder.Lock(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := other.Delete(ctx, key); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	var rows int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+holder.Table()+" WHERE key = $1", key).Scan(&rows); err != nil || rows != 0 {
		t.Errorf("rows of the key after Delete: %d, %v; want 0", rows, err)
	}
	if u, ok, err := other.TryLock(ctx, key); ok || err != nil {
		t.Errorf("TryLock after Delete while the lock was held: got %v, %v; want not ok", ok, err)
		if ok {
			u()
		}
	}
	if err := holder.CompareAndSwap(ctx, key, tok, testToken("late")); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("the holder's late save after Delete: got %v, want ErrConflict", err)
	}
	err = other.Delete(ctx, "bad\xffkey")
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || strings.Contains(err.Error(), "\xff") {
		t.Errorf("Delete of a key that is not UTF-8: got %v, want a refusal that does not quote it", err)
	}
}
