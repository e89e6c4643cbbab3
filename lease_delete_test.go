package refresh_test

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/storetest"
)

func newDeletingLeaseLocker(t *testing.T, s interface {
	refresh.CompareAndSwapper
	refresh.Deleter
}, o refresh.LeaseOptions) *refresh.DeletingLeaseLocker {
	t.Helper()
	l, err := refresh.NewDeletingLeaseLocker(s, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestDeletingLeaseLockerConformance: a DeletingLeaseLocker is a conforming
// Deleter as well as a Locker, TryLocker and CompareAndSwapper, over
// MemoryStore and over filestore.
func TestDeletingLeaseLockerConformance(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			return newDeletingLeaseLocker(t, new(refresh.MemoryStore), refresh.LeaseOptions{})
		})
	})
	t.Run("File", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			fs, err := filestore.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return newDeletingLeaseLocker(t, fs, refresh.LeaseOptions{})
		})
	})
}

// TestLeaseLockerDeleteCapability: a LeaseLocker has no Delete even over a
// store that has one (the engine would take it for a store that deletes
// whatever it wraps); a DeletingLeaseLocker has.
func TestLeaseLockerDeleteCapability(t *testing.T) {
	var s refresh.TokenStore = newLeaseLocker(t, new(refresh.MemoryStore), refresh.LeaseOptions{})
	if _, ok := s.(refresh.Deleter); ok {
		t.Errorf("%T is a refresh.Deleter", s)
	}
	s = newDeletingLeaseLocker(t, new(refresh.MemoryStore), refresh.LeaseOptions{})
	if _, ok := s.(refresh.Deleter); !ok {
		t.Errorf("%T is not a refresh.Deleter", s)
	}
	if _, err := refresh.NewDeletingLeaseLocker(nil, refresh.LeaseOptions{}); err == nil {
		t.Errorf("NewDeletingLeaseLocker accepted a nil store")
	}
}

// TestDeletingLeaseLockerNames: Delete deletes the token under its name in
// the store ("~" + key for a key that starts with "~"), never the token of
// a key that looks like that name, and never a lease: a lock held while
// its key is deleted stays held, and its holder's late save is refused.
func TestDeletingLeaseLockerNames(t *testing.T) {
	ctx := t.Context()
	var m refresh.MemoryStore
	l := newDeletingLeaseLocker(t, &m, refresh.LeaseOptions{})
	other := newDeletingLeaseLocker(t, &m, refresh.LeaseOptions{}) // another process
	tok := &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}
	keys := []string{"~x", "x", "~lease~x"}
	for _, key := range keys {
		if err := l.Save(ctx, key, tok); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := l.Lock(ctx, "~x")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := other.Delete(ctx, "~x"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := m.Load(ctx, "~~x"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf(`the token of "~x", stored as "~~x", is still there: %v`, err)
	}
	for _, key := range keys[1:] {
		if got, err := l.Load(ctx, key); err != nil || !refresh.SameToken(got, tok) {
			t.Errorf("Load(%q) after Delete of %q: got %v, %v; want its token", key, "~x", got != nil, err)
		}
	}
	if _, err := m.Load(ctx, "~lease~~x"); err != nil {
		t.Errorf(`the lease of "~x" was deleted: %v`, err)
	}
	if u, ok, err := other.TryLock(ctx, "~x"); ok || err != nil {
		t.Errorf("TryLock of a key deleted while locked: got %v, %v; want held", ok, err)
		if ok {
			u()
		}
	}
	if err := l.CompareAndSwap(ctx, "~x", tok, &oauth2.Token{AccessToken: "at2"}); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("the holder's save after Delete: got %v, want ErrConflict", err)
	}
	if err := other.Delete(context.Background(), "never saved"); err != nil {
		t.Errorf("Delete of a key never saved: %v", err)
	}
}
