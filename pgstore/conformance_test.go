package pgstore_test

import (
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
	"github.com/oauthkit/refresh/sealed"
	"github.com/oauthkit/refresh/storetest"
)

// TestConformance runs the store conformance kit, locks and
// compare-and-swap included, against a table in a schema of its own.
func TestConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, s *pgstore.Store) refresh.TokenStore { return s })
}

// TestSealedConformance runs the kit against the sealing wrapper over the
// store: tokens encrypted in the table, with the store's lock, try-lock and
// compare-and-swap passed through.
func TestSealedConformance(t *testing.T) {
	key := sealed.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	runConformance(t, func(t *testing.T, s *pgstore.Store) refresh.TokenStore {
		w, err := sealed.New(s, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := w.(refresh.Locker); !ok {
			t.Fatal("sealed store over pgstore is not a refresh.Locker")
		}
		if _, ok := w.(refresh.CompareAndSwapper); !ok {
			t.Fatal("sealed store over pgstore is not a refresh.CompareAndSwapper")
		}
		if _, ok := w.(refresh.TryLocker); !ok {
			t.Fatal("sealed store over pgstore is not a refresh.TryLocker")
		}
		if _, ok := w.(refresh.Deleter); !ok {
			t.Fatal("sealed store over pgstore is not a refresh.Deleter")
		}
		return w
	})
}

// TestLeaseLockerConformance runs the kit against refresh.LeaseLocker over
// the store: the lease lock a backend with only Load, Save, CompareAndSwap
// and Delete would have, here over a real database (pgstore's own lock
// unused).
func TestLeaseLockerConformance(t *testing.T) {
	runConformance(t, func(t *testing.T, s *pgstore.Store) refresh.TokenStore {
		l, err := refresh.NewDeletingLeaseLocker(s, refresh.LeaseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

// runConformance runs storetest over what wrap makes of a new Store, for
// each subtest, over one migrated table in a schema of its own.
func runConformance(t *testing.T, wrap func(t *testing.T, s *pgstore.Store) refresh.TokenStore) {
	opts := pgstore.Options{Schema: testSchema(t)}
	pool := testPool(t, maxConns(8))
	migrated(t, pool, opts)
	storetest.Run(t, func(t *testing.T) refresh.TokenStore {
		s, err := pgstore.New(pool, opts)
		if err != nil {
			t.Fatal(err)
		}
		return wrap(t, s)
	})
}
