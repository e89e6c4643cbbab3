package sealed_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/caps"
	"github.com/oauthkit/refresh/storetest"
)

// memBackend has Load and Save only, over a MemoryStore that backendWith
// shares with the capabilities it adds.
type memBackend struct{ m *refresh.MemoryStore }

func (b memBackend) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return b.m.Load(ctx, key)
}

func (b memBackend) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return b.m.Save(ctx, key, tok)
}

// combo is a combination of backend capabilities.
type combo struct {
	lock     int // 0: none, 1: Locker, 2: TryLocker
	cas, del bool
}

func (c combo) String() string {
	return fmt.Sprintf("%s,cas=%v,delete=%v", [...]string{"nolock", "locker", "trylocker"}[c.lock], c.cas, c.del)
}

// allCombos are the 12 combinations.
func allCombos() []combo {
	var cs []combo
	for lock := range 3 {
		for _, cas := range []bool{false, true} {
			for _, del := range []bool{false, true} {
				cs = append(cs, combo{lock, cas, del})
			}
		}
	}
	return cs
}

// backendWith returns a backend with exactly c's capabilities, over one
// MemoryStore and one set of in-process locks.
func backendWith(c combo) refresh.TokenStore {
	mem, locks := new(refresh.MemoryStore), new(tryMutexLocks)
	var m caps.Methods
	if c.lock >= 1 {
		m.Lock = locks.Lock
	}
	if c.lock == 2 {
		m.TryLock = locks.TryLock
	}
	if c.cas {
		m.CompareAndSwap = mem.CompareAndSwap
	}
	if c.del {
		m.Delete = mem.Delete
	}
	return caps.With(memBackend{mem}, m)
}

// capsOf returns the combination s has.
func capsOf(s refresh.TokenStore) combo {
	var c combo
	if _, ok := s.(refresh.Locker); ok {
		c.lock = 1
	}
	if _, ok := s.(refresh.TryLocker); ok {
		c.lock = 2
	}
	_, c.cas = s.(refresh.CompareAndSwapper)
	_, c.del = s.(refresh.Deleter)
	return c
}

// wrappers are the three ways of wrapping a backend.
func wrappers(t *testing.T) []struct {
	name string
	wrap func(b refresh.TokenStore) refresh.TokenStore
} {
	k1, names := newKey(t, "k1"), nameSecret(t)
	return []struct {
		name string
		wrap func(b refresh.TokenStore) refresh.TokenStore
	}{
		{"sealed", func(b refresh.TokenStore) refresh.TokenStore { return mustNew(t, b, k1) }},
		{"hidden", func(b refresh.TokenStore) refresh.TokenStore { return mustHide(t, b, names) }},
		{"hidden and sealed", func(b refresh.TokenStore) refresh.TokenStore { return mustNew(t, mustHide(t, b, names), k1) }},
	}
}

// TestExactCapabilities: over each of the 12 combinations of backend
// capabilities, each wrapper has exactly the backend's, and its Delete
// deletes the backend's token of the key.
func TestExactCapabilities(t *testing.T) {
	ctx := t.Context()
	for _, c := range allCombos() {
		for _, w := range wrappers(t) {
			b := backendWith(c)
			if got := capsOf(b); got != c {
				t.Fatalf("%v: the fake backend has %v", c, got)
			}
			s := w.wrap(b)
			if got := capsOf(s); got != c {
				t.Errorf("%s over %v: %T has %v", w.name, c, s, got)
				continue
			}
			d, ok := s.(refresh.Deleter)
			if !ok {
				continue
			}
			old := tokenN(1)
			if err := s.Save(ctx, "a", old); err != nil {
				t.Fatal(err)
			}
			if err := s.Save(ctx, "b", tokenN(2)); err != nil {
				t.Fatal(err)
			}
			if err := d.Delete(ctx, "a"); err != nil {
				t.Errorf("%s over %v: Delete: %v", w.name, c, err)
			}
			if _, err := s.Load(ctx, "a"); !errors.Is(err, refresh.ErrNotFound) {
				t.Errorf("%s over %v: Load after Delete: got %v, want ErrNotFound", w.name, c, err)
			}
			if _, err := s.Load(ctx, "b"); err != nil {
				t.Errorf("%s over %v: Load of another key after Delete: %v", w.name, c, err)
			}
			if cs, ok := s.(refresh.CompareAndSwapper); ok {
				if err := cs.CompareAndSwap(ctx, "a", old, tokenN(3)); !errors.Is(err, refresh.ErrConflict) {
					t.Errorf("%s over %v: CompareAndSwap from the deleted token: got %v, want ErrConflict", w.name, c, err)
				}
			}
		}
	}
}

// TestConformanceCombos runs the conformance suite through each wrapper
// over the combinations TestConformance's hand-written backends lack: with
// Delete but no CompareAndSwap, and with CompareAndSwap but no Delete.
func TestConformanceCombos(t *testing.T) {
	for _, c := range []combo{{lock: 0, del: true}, {lock: 2, del: true}, {lock: 1, cas: true}, {lock: 2, cas: true}} {
		for _, w := range wrappers(t) {
			t.Run(w.name+"/"+c.String(), func(t *testing.T) {
				storetest.Run(t, func(t *testing.T) refresh.TokenStore { return w.wrap(backendWith(c)) })
			})
		}
	}
}
