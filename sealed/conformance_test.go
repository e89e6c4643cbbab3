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
		m.mu.Lock()
		if m.held == nil {
			m.held = make(map[string]chan struct{})
		}
		ch, busy := m.held[key]
		if !busy {
			ch = make(chan struct{})
			m.held[key] = ch
			m.mu.Unlock()
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
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %q: %w", key, ctx.Err())
		}
	}
}

type mutexLockBackend struct {
	*plainBackend
	mutexLocks
}

type mutexLockCASBackend struct {
	*refresh.MemoryStore
	mutexLocks
}
