package refresh

import (
	"context"
	"errors"

	"golang.org/x/oauth2"
)

// ownStore is the store of an engine configured without one: each key's
// token lives in its entry (entry.stored), the same immutable token the
// engine serves, so a key costs one copy of its token, not the two of an
// engine over a [MemoryStore]. It behaves as a MemoryStore: a
// CompareAndSwapper and a Deleter. Only the engine calls it, always with
// tokens of its own that it never modifies afterwards.
type ownStore struct{ e *Engine }

func (s ownStore) find(key string) *entry {
	if key == DefaultKey {
		return s.e.def.Load()
	}
	return s.e.keys.find(key)
}

// Load implements [TokenStore].
func (s ownStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if ent := s.find(key); ent != nil {
		if t := ent.stored.Load(); t != nil {
			return t, nil
		}
	}
	return nil, ErrNotFound
}

// Save implements [TokenStore].
func (s ownStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("refresh: nil token")
	}
	s.e.entry(key).stored.Store(tok)
	return nil
}

// CompareAndSwap implements [CompareAndSwapper].
func (s ownStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("refresh: nil token")
	}
	ent := s.e.entry(key)
	for {
		cur := ent.stored.Load()
		if !SameToken(cur, old) {
			return ErrConflict
		}
		if ent.stored.CompareAndSwap(cur, new) {
			return nil
		}
	}
}

// Delete implements [Deleter].
func (s ownStore) Delete(ctx context.Context, key string) error {
	if ent := s.find(key); ent != nil {
		ent.stored.Store(nil)
	}
	return nil
}
