package sealed

import (
	"context"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/caps"
	"golang.org/x/oauth2"
)

// New returns a [refresh.TokenStore] that seals every token with current
// before saving it in next, and opens what it loads from next with whichever
// of current and old the sealed value names.
//
// The result implements [refresh.Locker], [refresh.TryLocker],
// [refresh.CompareAndSwapper] and [refresh.Deleter] each if and only if
// next does; Lock, TryLock and Delete are next's. New checks every key (ID,
// 32-byte secret) and refuses duplicate IDs and two keys with the same
// secret. It keeps no reference to the secrets.
func New(next refresh.TokenStore, current Key, old ...Key) (refresh.TokenStore, error) {
	if next == nil {
		return nil, errors.New("sealed: nil backend store")
	}
	s := &store{next: next, current: current.ID, keys: make(map[string]cipher.AEAD, 1+len(old))}
	all := append([]Key{current}, old...)
	for i, k := range all {
		what := "current key"
		if i > 0 {
			what = fmt.Sprintf("old key %d", i)
		}
		aead, err := newAEAD(k, what)
		if err != nil {
			return nil, err
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("sealed: duplicate key id %q", k.ID)
		}
		for _, prev := range all[:i] {
			if subtle.ConstantTimeCompare(prev.Secret, k.Secret) == 1 {
				return nil, fmt.Errorf("sealed: keys %q and %q have the same secret", prev.ID, k.ID)
			}
		}
		s.keys[k.ID] = aead
	}
	return caps.With(s, s.capabilities()), nil
}

// capabilities are the optional methods of next, passed through: Lock,
// TryLock and Delete are next's (there is nothing to seal in them),
// CompareAndSwap seals (see casser).
func (s *store) capabilities() caps.Methods {
	var m caps.Methods
	if l, ok := s.next.(refresh.Locker); ok {
		m.Lock = l.Lock
	}
	if l, ok := s.next.(refresh.TryLocker); ok {
		m.TryLock = l.TryLock
	}
	if c, ok := s.next.(refresh.CompareAndSwapper); ok {
		m.CompareAndSwap = casser{s, c}.CompareAndSwap
	}
	if d, ok := s.next.(refresh.Deleter); ok {
		m.Delete = d.Delete
	}
	return m
}

// store seals and opens; it is the plain TokenStore, which caps.With gives
// the backend's other capabilities.
type store struct {
	next    refresh.TokenStore     // the backend; it only ever sees sealed tokens
	current string                 // ID of the key that seals
	keys    map[string]cipher.AEAD // key ID → AES-256-GCM; read-only after New
}

// Load implements [refresh.TokenStore]. Errors of the backend, among them
// [refresh.ErrNotFound], are returned unchanged. A stored value that does
// not open gives an error wrapping [ErrNotSealed], [ErrUnknownKeyID] or
// [ErrAuthentication].
func (s *store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	raw, err := s.next.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return s.open(key, raw)
}

// Save implements [refresh.TokenStore]: it seals tok with the current key
// and saves the result in the backend.
func (s *store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("sealed: Save: nil token")
	}
	sealed, err := s.seal(key, tok)
	if err != nil {
		return err
	}
	return s.next.Save(ctx, key, sealed)
}

func (s *store) seal(key string, tok *oauth2.Token) (*oauth2.Token, error) {
	return seal(s.keys[s.current], s.current, key, tok)
}

// open returns the token that raw, loaded from the backend for key, seals.
func (s *store) open(key string, raw *oauth2.Token) (*oauth2.Token, error) {
	if raw == nil {
		return nil, fmt.Errorf("sealed: key %q: backend returned neither a token nor an error", key)
	}
	keyID, data, ok := parse(raw)
	if !ok {
		// Not quoted: it may be a plaintext token.
		return nil, &openError{
			msg: fmt.Sprintf("sealed: key %q: stored token is not sealed (saved without this wrapper?)", key),
			err: ErrNotSealed,
		}
	}
	aead, ok := s.keys[keyID]
	if !ok {
		return nil, &openError{
			msg: fmt.Sprintf("sealed: key %q: token sealed with unknown key id %q (old key removed too early?)", key, keyID),
			err: ErrUnknownKeyID,
		}
	}
	return open(aead, keyID, key, data)
}

// casser implements CompareAndSwap over a backend that has it.
type casser struct {
	s *store
	c refresh.CompareAndSwapper
}

// maxCASAttempts bounds the retries of CompareAndSwap when the backend's
// swap fails but the stored token still matches (it was sealed again, with
// the same contents, between the read and the swap).
const maxCASAttempts = 3

// CompareAndSwap implements [refresh.CompareAndSwapper].
//
// Sealing is randomized, so old cannot be sealed again and compared with the
// stored ciphertext. Instead the stored value is loaded and opened, compared
// with old ([refresh.SameToken]), and swapped for sealed new with the
// backend's CompareAndSwap against that very ciphertext: the backend's
// atomic check then refuses any write that came in between. If that write
// stored the same token sealed afresh, the comparison is tried again, a few
// times at most; in the end the backend's conflict is returned.
func (c casser) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("sealed: CompareAndSwap: nil token")
	}
	sealedNew, err := c.s.seal(key, new)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		raw, err := c.s.next.Load(ctx, key)
		var cur *oauth2.Token // nil: nothing stored
		switch {
		case errors.Is(err, refresh.ErrNotFound):
			raw = nil
		case err != nil:
			return err
		default:
			if cur, err = c.s.open(key, raw); err != nil {
				return err
			}
		}
		if !refresh.SameToken(cur, old) {
			return fmt.Errorf("sealed: key %q: %w", key, refresh.ErrConflict)
		}
		err = c.c.CompareAndSwap(ctx, key, raw, sealedNew)
		if err == nil || !errors.Is(err, refresh.ErrConflict) || attempt == maxCASAttempts {
			return err
		}
	}
}
