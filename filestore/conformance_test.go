package filestore_test

import (
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/sealed"
	"github.com/oauthkit/refresh/storetest"
)

// TestConformance runs the store conformance kit against the file store.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) refresh.TokenStore {
		s, err := filestore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSealedConformance runs the kit against the sealing wrapper over a
// file store: tokens encrypted at rest on disk, with the file store's lock
// and compare-and-swap passed through.
func TestSealedConformance(t *testing.T) {
	key := sealed.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	storetest.Run(t, func(t *testing.T) refresh.TokenStore {
		s, err := filestore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w, err := sealed.New(s, key)
		if err != nil {
			t.Fatal(err)
		}
		return w
	})
}
