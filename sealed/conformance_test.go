package sealed_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/storetest"
)

// TestConformance runs the store conformance suite through the wrappers
// (sealing, hiding keys, both) over each combination of backend
// capabilities: a wrapper must honour every contract its backend does.
func TestConformance(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	names := nameSecret(t)
	wrappers := []struct {
		name string
		wrap func(t *testing.T, b refresh.TokenStore) refresh.TokenStore
	}{
		{"sealed", func(t *testing.T, b refresh.TokenStore) refresh.TokenStore { return mustNew(t, b, k2, k1) }},
		{"hidden", func(t *testing.T, b refresh.TokenStore) refresh.TokenStore { return mustHide(t, b, names) }},
		{"hidden and sealed", func(t *testing.T, b refresh.TokenStore) refresh.TokenStore {
			return mustNew(t, mustHide(t, b, names), k2, k1)
		}},
	}
	for _, tt := range []struct {
		name    string
		backend func() refresh.TokenStore
	}{
		{"plain", func() refresh.TokenStore { return &plainBackend{} }},
		{"locker", func() refresh.TokenStore { return &mutexLockBackend{plainBackend: &plainBackend{}} }},
		{"cas", func() refresh.TokenStore { return &refresh.MemoryStore{} }},
		{"locker+cas", func() refresh.TokenStore { return &mutexLockCASBackend{MemoryStore: &refresh.MemoryStore{}} }},
		{"trylocker+cas", func() refresh.TokenStore { return &tryLockCASBackend{MemoryStore: &refresh.MemoryStore{}} }},
	} {
		for _, w := range wrappers {
			t.Run(w.name+"/"+tt.name, func(t *testing.T) {
				storetest.Run(t, func(t *testing.T) refresh.TokenStore {
					return w.wrap(t, tt.backend())
				})
			})
		}
	}
}

// mutexLocks is an in-process refresh.Locker: one holder per key, waiters
// give up when their context ends.
type mutexLocks struct {
	mu   sync.Mutex
	held map[string]chan struct{} // key → closed when its holder unlocks
}

func (m *mutexLocks) Lock(ctx context.Context, key string) (func(), error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lock %q: %w", key, err)
		}
		unlock, ch := m.take(key)
		if unlock != nil {
			return unlock, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %q: %w", key, ctx.Err())
		}
	}
}

// take takes key's lock if it is free and returns its unlock; otherwise it
// returns a channel closed when the holder unlocks.
func (m *mutexLocks) take(key string) (unlock func(), freed <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held == nil {
		m.held = make(map[string]chan struct{})
	}
	if ch, busy := m.held[key]; busy {
		return nil, ch
	}
	ch := make(chan struct{})
	m.held[key] = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			delete(m.held, key)
			m.mu.Unlock()
			close(ch)
		})
	}, nil
}

// tryMutexLocks are mutexLocks that can also TryLock.
type tryMutexLocks struct{ mutexLocks }

func (m *tryMutexLocks) TryLock(ctx context.Context, key string) (func(), bool, error) {
	unlock, _ := m.take(key)
	return unlock, unlock != nil, nil
}

type tryLockCASBackend struct {
	*refresh.MemoryStore
	tryMutexLocks
}

type mutexLockBackend struct {
	*plainBackend
	mutexLocks
}

type mutexLockCASBackend struct {
	*refresh.MemoryStore
	mutexLocks
}

type tryLockBackend struct {
	*plainBackend
	tryMutexLocks
}

// TestTryLockCapability: every wrapper is a refresh.TryLocker exactly when
// its backend is, with or without CompareAndSwap, and its TryLock is the
// backend's, of the name the backend sees.
func TestTryLockCapability(t *testing.T) {
	k1, names := newKey(t, "k1"), nameSecret(t)
	for _, tt := range []struct {
		name    string
		backend func() refresh.TokenStore
		wantTry bool
	}{
		{"locker", func() refresh.TokenStore { return &mutexLockBackend{plainBackend: &plainBackend{}} }, false},
		{"trylocker", func() refresh.TokenStore { return &tryLockBackend{plainBackend: &plainBackend{}} }, true},
		{"trylocker+cas", func() refresh.TokenStore { return &tryLockCASBackend{MemoryStore: &refresh.MemoryStore{}} }, true},
	} {
		b := tt.backend()
		for _, s := range []refresh.TokenStore{mustNew(t, b, k1), mustHide(t, b, names), mustNew(t, mustHide(t, b, names), k1)} {
			tl, isTry := s.(refresh.TryLocker)
			if _, isLock := s.(refresh.Locker); !isLock || isTry != tt.wantTry {
				t.Errorf("%s: %T is Locker %v, TryLocker %v; want true, %v", tt.name, s, isLock, isTry, tt.wantTry)
			}
			if !isTry {
				continue
			}
			unlock, ok, err := tl.TryLock(t.Context(), "a")
			if !ok || err != nil {
				t.Fatalf("%s: %T: TryLock of a free key: got %v, %v; want the lock", tt.name, s, ok, err)
			}
			if _, ok, _ := tl.TryLock(t.Context(), "a"); ok {
				t.Errorf("%s: %T: a second TryLock got the lock too", tt.name, s)
			}
			unlock()
		}
	}
}
