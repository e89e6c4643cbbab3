package refresh

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/oauth2"
)

// ErrNotFound is returned by [TokenStore.Load] when the store holds no token
// for the key.
var ErrNotFound = errors.New("refresh: no token stored for this key")

// A TokenStore keeps the current token of each key, so that a rotated
// refresh token survives a restart and is shared with other processes that
// use the same store.
//
// Implementations must be safe for concurrent use. The engine calls them
// with a context that carries its own deadline (the refresh timeout); a store
// should honour it.
type TokenStore interface {
	// Load returns the token stored for key. If there is none, Load returns
	// an error for which errors.Is(err, ErrNotFound) is true; any other
	// error means the store could not be read, and the engine will not call
	// the token endpoint on a guess.
	//
	// The returned token must not be modified by the store afterwards; the
	// engine does not modify it either.
	Load(ctx context.Context, key string) (*oauth2.Token, error)

	// Save replaces the token stored for key. When Save returns nil the
	// token must be durable to the extent the store promises (a restart of
	// the process must see it). Save must not keep a reference to tok that
	// it later modifies. A failed Save must leave the previous token intact
	// or replace it entirely, never with a mix of both.
	Save(ctx context.Context, key string, tok *oauth2.Token) error
}

// MemoryStore is a [TokenStore] that keeps tokens in memory, for programs
// that do not need tokens to survive a restart and for tests. Its zero value
// is an empty store ready to use.
type MemoryStore struct {
	mu sync.RWMutex             // protects m
	m  map[string]*oauth2.Token // key → private copy of the token
}

// Load implements [TokenStore].
func (s *MemoryStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	s.mu.RLock()
	t, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrNotFound
	}
	return copyToken(t), nil
}

// Save implements [TokenStore].
func (s *MemoryStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("refresh: MemoryStore.Save: nil token")
	}
	t := copyToken(tok)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[string]*oauth2.Token)
	}
	s.m[key] = t
	s.mu.Unlock()
	return nil
}

// copyToken returns a copy of the exported fields of t. Extra response
// fields (oauth2.Token.Extra) are not kept: they belong to the response that
// produced the token, not to the token.
func copyToken(t *oauth2.Token) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  t.AccessToken,
		TokenType:    t.TokenType,
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
		ExpiresIn:    t.ExpiresIn,
	}
}
