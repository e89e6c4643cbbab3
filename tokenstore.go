package refresh

import (
	"context"
	"errors"
	"sync"

	"github.com/oauthkit/refresh/internal/extra"

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
//
// A store that is also a [CompareAndSwapper] gets refreshed tokens through
// CompareAndSwap, not Save. A type that embeds one (such as [MemoryStore])
// and overrides Save must therefore override CompareAndSwap too, or the
// engine's saves bypass the override through the promoted method; see
// [MemoryStore] (example "wrapping").
//
// A store should keep a token's extras too (oauth2.Token.Extra, such as the
// id_token and scope of the response that issued it): the JSON scalars
// (string, float64, bool) that Extra returns for a token the engine hands
// it, and nothing of a previous token's for one saved without them. Every
// store of this module does, and storetest checks it.
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

// ErrConflict is returned by [CompareAndSwapper.CompareAndSwap] when the
// stored token is not the expected one: someone else saved a newer token.
var ErrConflict = errors.New("refresh: the stored token has changed")

// A Locker is a [TokenStore] that can keep other processes (and other
// engines over the same store) from refreshing a key at the same time. The
// engine holds the lock across "re-read the store, call the token endpoint,
// save", so only one of many processes spends a refresh token and the others
// adopt its result. If the save fails, the engine keeps holding the lock
// until a later save succeeds (or [Engine.Close]), which can take minutes:
// until then the store holds a spent refresh token that no other process
// may send. A lease must therefore be renewed for as long as it is held.
type Locker interface {
	TokenStore

	// Lock waits until the caller holds the lock of key, or ctx ends; then
	// it returns an error that wraps ctx.Err() and holds nothing.
	//
	// The lock is exclusive across every process using the store. It must
	// be released when unlock is called, and also without it if the
	// holding process dies (a kernel file lock, a database session, a
	// lease that expires). A lease may expire while its holder is still
	// running (a paused process): that is why saves under a lock go
	// through [CompareAndSwapper] when the store has it. unlock is called
	// exactly once; it must not block for long and cannot fail (a lock it
	// fails to release must still be released by the fallback above).
	// Locks of different keys are independent.
	Lock(ctx context.Context, key string) (unlock func(), err error)
}

// A TryLocker is a [Locker] that can also take a key's lock only if it is
// free at that moment, without waiting for a holder. The engine uses it
// where waiting would block a caller that needs no new token (a refresh
// started early, while the current token is still valid): if another
// process holds the lock, that process is refreshing, and the caller keeps
// the token it has.
type TryLocker interface {
	Locker

	// TryLock takes the lock of key if no one holds it, and returns its
	// unlock func and true; the lock is then the one Lock takes, with the
	// same rules (unlock is called exactly once, the lock is released if
	// the holder dies). If the lock is held (by any process, this one
	// included), TryLock returns nil, false and a nil error at once: it
	// never waits for a holder, although it may take a round trip to the
	// backend to find out. An error means the store could not tell; it
	// holds nothing then, and wraps ctx.Err() if ctx ended.
	TryLock(ctx context.Context, key string) (unlock func(), ok bool, err error)
}

// A CompareAndSwapper is a [TokenStore] that can replace a token only if
// it is still the one the caller read, so that a writer that lost its lock
// (paused past a lease, slow) can never overwrite a newer token.
//
// The engine saves a refreshed token with CompareAndSwap whenever the store
// has it and the engine knows what the store holds for the key, and with
// Save otherwise (and in [Engine.SetToken]). A method promoted from an
// embedded field counts: a wrapper that embeds a CompareAndSwapper and
// overrides only Save is bypassed by the engine's saves.
type CompareAndSwapper interface {
	TokenStore

	// CompareAndSwap stores new for key if the token stored now equals old
	// (the same AccessToken and RefreshToken), or if old is nil and
	// nothing is stored. Otherwise it stores nothing and returns an error
	// wrapping [ErrConflict]. The check and the write are one atomic step
	// with respect to every other Save and CompareAndSwap on the store.
	CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error
}

// A Deleter is a [TokenStore] that can delete the token of a key, for
// [Engine.Logout]. Every store of this module is one.
type Deleter interface {
	TokenStore

	// Delete removes the token stored for key, with its extras. Deleting a
	// key that has no token is not an error. Once Delete returned nil, Load
	// returns [ErrNotFound] and a CompareAndSwap whose old token is not nil
	// fails with [ErrConflict], so that a refresh that was running
	// elsewhere cannot bring the key back with a late save; a Save or a
	// CompareAndSwap from nil stores a token again. The deletion is one
	// atomic step with respect to every Save and CompareAndSwap.
	Delete(ctx context.Context, key string) error
}

// SameToken reports whether a and b are the same token in the sense of
// [CompareAndSwapper]: equal AccessToken and RefreshToken, or both nil.
// Store implementations can use it.
func SameToken(a, b *oauth2.Token) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken
}

// MemoryStore is a [TokenStore] that keeps tokens in memory, for programs
// that do not need tokens to survive a restart and for tests. It keeps
// their extras (oauth2.Token.Extra). Its zero value is an empty store ready
// to use.
//
// MemoryStore is a [CompareAndSwapper]. A type that embeds it to add to its
// writes must override CompareAndSwap as well as Save: the engine saves
// refreshed tokens with CompareAndSwap, which is otherwise promoted from
// MemoryStore and skips the overridden Save. Alternatively hold the
// MemoryStore in a named field and implement only Load and Save.
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

// Delete implements [Deleter].
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// CompareAndSwap implements [CompareAndSwapper].
func (s *MemoryStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("refresh: MemoryStore.CompareAndSwap: nil token")
	}
	t := copyToken(new)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !SameToken(s.m[key], old) {
		return ErrConflict
	}
	if s.m == nil {
		s.m = make(map[string]*oauth2.Token)
	}
	s.m[key] = t
	return nil
}

// copyToken returns a copy of the exported fields of t and of its extras
// (oauth2.Token.Extra: the JSON scalars, within the limits of
// internal/extra), which share nothing with t's.
func copyToken(t *oauth2.Token) *oauth2.Token {
	return extra.Copy(t)
}
