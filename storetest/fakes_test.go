package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// lockStore is a correct store with every capability: a
// refresh.MemoryStore (which is a CompareAndSwapper) and a Locker made of
// one channel per key, of capacity one, as a mutex whose Lock can give up.
type lockStore struct {
	*refresh.MemoryStore

	mu    sync.Mutex               // protects locks
	locks map[string]chan struct{} // key → a token while the key is locked
}

func newLockStore() *lockStore { return &lockStore{MemoryStore: new(refresh.MemoryStore)} }

func (s *lockStore) lockChan(key string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks == nil {
		s.locks = make(map[string]chan struct{})
	}
	ch, ok := s.locks[key]
	if !ok {
		ch = make(chan struct{}, 1)
		s.locks[key] = ch
	}
	return ch
}

// Lock implements refresh.Locker.
func (s *lockStore) Lock(ctx context.Context, key string) (func(), error) {
	ch := s.lockChan(key)
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("lockStore: lock %q: %w", key, ctx.Err())
	}
}

// TryLock implements refresh.TryLocker.
func (s *lockStore) TryLock(ctx context.Context, key string) (func(), bool, error) {
	ch := s.lockChan(key)
	select {
	case ch <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-ch }) }, true, nil
	default:
		return nil, false, nil
	}
}

// The broken stores below each break one rule; storetest_test.go checks that
// the check for that rule fails on them.

// keyMapStore stores the token of key under mapKey(key): a store that
// folds distinct keys together.
type keyMapStore struct {
	m      refresh.MemoryStore
	mapKey func(string) string
}

func (s *keyMapStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.m.Load(ctx, s.mapKey(key))
}

func (s *keyMapStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.m.Save(ctx, s.mapKey(key), tok)
}

// transformStore stores what transform makes of a copy of each token: a
// store that loses or rounds fields.
type transformStore struct {
	m         refresh.MemoryStore
	transform func(*oauth2.Token)
}

func (s *transformStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.m.Load(ctx, key)
}

func (s *transformStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	t := clone(tok)
	s.transform(t)
	return s.m.Save(ctx, key, t)
}

// mergingStore keeps the old refresh token and expiry when a new token
// lacks them, like an UPDATE that only sets non-empty columns.
type mergingStore struct {
	m refresh.MemoryStore
}

func (s *mergingStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return s.m.Load(ctx, key)
}

func (s *mergingStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	t := clone(tok)
	if old, err := s.m.Load(ctx, key); err == nil {
		if t.RefreshToken == "" {
			t.RefreshToken = old.RefreshToken
		}
		if t.Expiry.IsZero() {
			t.Expiry = old.Expiry
		}
	}
	return s.m.Save(ctx, key, t)
}

// expiringStore forgets a token once its access token has expired, like a
// cache entry with a TTL, and with it the refresh token that outlives it.
type expiringStore struct {
	refresh.MemoryStore
}

func (s *expiringStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	tok, err := s.MemoryStore.Load(ctx, key)
	if err == nil && !tok.Expiry.IsZero() && tok.Expiry.Before(time.Now()) {
		return nil, refresh.ErrNotFound
	}
	return tok, err
}

// notFoundStore answers a missing key with missing() instead of
// ErrNotFound.
type notFoundStore struct {
	m       refresh.MemoryStore
	missing func() (*oauth2.Token, error)
}

func (s *notFoundStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	tok, err := s.m.Load(ctx, key)
	if errors.Is(err, refresh.ErrNotFound) {
		return s.missing()
	}
	return tok, err
}

func (s *notFoundStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return s.m.Save(ctx, key, tok)
}

// aliasingStore keeps the caller's pointer and hands out its own.
type aliasingStore struct {
	mu sync.Mutex // protects m
	m  map[string]*oauth2.Token
}

func (s *aliasingStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.m[key]; ok {
		return t, nil
	}
	return nil, refresh.ErrNotFound
}

func (s *aliasingStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*oauth2.Token)
	}
	s.m[key] = tok
	return nil
}

// tornStore saves the access token and the rest in two steps, so a Load in
// between sees a mix of two saves.
type tornStore struct {
	mu sync.Mutex // protects m
	m  map[string]oauth2.Token
}

func (s *tornStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.m[key]; ok {
		return &t, nil
	}
	return nil, refresh.ErrNotFound
}

func (s *tornStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	t := *clone(tok)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]oauth2.Token)
	}
	half := s.m[key]
	half.AccessToken = t.AccessToken
	s.m[key] = half
	s.mu.Unlock()
	time.Sleep(time.Millisecond)
	s.mu.Lock()
	s.m[key] = t
	s.mu.Unlock()
	return nil
}

// ctxStore calls onDone instead of working when its context has ended.
type ctxStore struct {
	m      refresh.MemoryStore
	onDone func()
}

func (s *ctxStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if ctx.Err() != nil {
		s.onDone()
	}
	return s.m.Load(ctx, key)
}

func (s *ctxStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if ctx.Err() != nil {
		s.onDone()
	}
	return s.m.Save(ctx, key, tok)
}

// casStore is a store whose CompareAndSwap can be broken in every way: by
// what it compares (same), by the error it returns, and by a gap between
// the check and the write.
type casStore struct {
	mu       sync.Mutex // protects m
	m        map[string]*oauth2.Token
	same     func(stored, old *oauth2.Token) bool
	conflict error
	gap      time.Duration // between the check and the write, unlocked
}

func (s *casStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.m[key]; ok {
		return clone(t), nil
	}
	return nil, refresh.ErrNotFound
}

func (s *casStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*oauth2.Token)
	}
	s.m[key] = clone(tok)
	return nil
}

func (s *casStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.same(s.m[key], old)
	if s.gap > 0 {
		s.mu.Unlock()
		time.Sleep(s.gap)
		s.mu.Lock()
	}
	if !ok {
		return s.conflict
	}
	if s.m == nil {
		s.m = make(map[string]*oauth2.Token)
	}
	s.m[key] = clone(new)
	return nil
}

// lockVariant is a lockStore whose Lock is replaced by lock.
type lockVariant struct {
	*lockStore
	lock func(s *lockStore, ctx context.Context, key string) (func(), error)
}

func (s *lockVariant) Lock(ctx context.Context, key string) (func(), error) {
	return s.lock(s.lockStore, ctx, key)
}

// tryVariant is a lockStore whose TryLock is replaced.
type tryVariant struct {
	*lockStore
	try func(s *lockStore, ctx context.Context, key string) (func(), bool, error)
}

func (s *tryVariant) TryLock(ctx context.Context, key string) (func(), bool, error) {
	return s.try(s.lockStore, ctx, key)
}
