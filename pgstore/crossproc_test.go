package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
	"github.com/oauthkit/refresh/storetest"
)

// TestProcesses proves the store with real OS processes that share one
// table (see storetest.RunProcesses): the advisory lock of a stopped
// holder's session keeps the others waiting, a killed holder's session
// ends with it, and once the server ends a stopped holder's session (as
// an idle or session timeout would; BreakLock), the holder is overtaken
// and its save refused.
func TestProcesses(t *testing.T) {
	storetest.RunProcesses(t, processStore, storetest.ProcessOptions{BreakLock: endLockSession})
}

// processStore is the store of ns: the table ns.Name, created if missing,
// and dropped when the parent's scenario ends.
func processStore(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
	pool := testPool(t, maxConns(4))
	s := migrated(t, pool, pgstore.Options{Table: ns.Name})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{ns.Name}.Sanitize()); err != nil {
			t.Errorf("drop table %s: %v", ns.Name, err)
		}
	})
	return s
}

// endLockSession ends the session that holds the key's advisory lock, and
// waits until the lock is free.
func endLockSession(t *testing.T, ns storetest.Namespace) {
	admin := testPool(t)
	s, err := pgstore.New(admin, pgstore.Options{Table: ns.Name})
	if err != nil {
		t.Fatal(err)
	}
	id := lockID(t, s, refresh.DefaultKey)
	terminate(t, admin, holder(t, admin, id))
	waitUnlocked(t, admin, id, 30*time.Second)
}
