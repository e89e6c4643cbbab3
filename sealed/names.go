package sealed

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/caps"
	"golang.org/x/oauth2"
)

// nameLabel starts the HMAC input, so that a secret used elsewhere too
// still gives names of its own. Changing it renames every key.
const nameLabel = "refresh/sealed/name/v1\x00"

// minNameSecret is the shortest secret HideKeys accepts: HMAC-SHA-256
// gains nothing from more than 32 bytes, and fewer would be guessable
// sooner than the hash.
const minNameSecret = 32

// HideKeys returns a [refresh.TokenStore] that passes every store key to
// next as a name that means nothing without secret: the lowercase hex
// HMAC-SHA-256 of the key under secret (64 characters). Wrap it with [New],
// so that the backend holds neither the keys nor the tokens:
//
//	hidden, err := sealed.HideKeys(backend, namesSecret)
//	…
//	store, err := sealed.New(hidden, current, old...)
//
// The result implements [refresh.Locker], [refresh.TryLocker],
// [refresh.CompareAndSwapper] and [refresh.Deleter] each if and only if
// next does (Lock and TryLock lock the key's name, Delete deletes it).
// Distinct keys get distinct names (two keys would share one only by an
// HMAC-SHA-256 collision), and each key always the same name, so
// a backend reader can still count the stored tokens and follow one name
// through time, but cannot tell whose it is, nor test a guess, without
// secret.
//
// secret is a secret of its own, not a sealing key's: at least 32 bytes
// from a cryptographic random source, kept like a [Key]. It cannot be
// rotated: another secret gives every key another name, so every stored
// token becomes unreachable (Load reports [refresh.ErrNotFound], and users
// log in again). Every process that shares the backend must use the same
// secret. Tokens stored before HideKeys was added are unreachable in the
// same way: load each one from next under its key and save it through the
// returned store, then delete the old entry with the backend's own tools.
// HideKeys keeps a copy of secret.
func HideKeys(next refresh.TokenStore, secret []byte) (refresh.TokenStore, error) {
	switch {
	case next == nil:
		return nil, errors.New("sealed: nil backend store")
	case len(secret) < minNameSecret:
		return nil, fmt.Errorf("sealed: name secret is %d bytes, want at least %d", len(secret), minNameSecret)
	case subtle.ConstantTimeCompare(secret, make([]byte, len(secret))) == 1:
		return nil, errors.New("sealed: name secret is all zero bytes (never filled?)")
	}
	n := &namer{next: next, secret: append([]byte(nil), secret...)}
	return caps.With(n, n.capabilities()), nil
}

// namer renames keys on their way to the backend.
type namer struct {
	next   refresh.TokenStore
	secret []byte // the HMAC key; read-only after HideKeys
}

// name returns the backend's name for key.
func (n *namer) name(key string) string {
	m := hmac.New(sha256.New, n.secret) // an HMAC is not safe for concurrent use: one per call
	m.Write([]byte(nameLabel))
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

// Load implements [refresh.TokenStore]: it loads key's name from the
// backend. The backend's errors are returned unchanged.
func (n *namer) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return n.next.Load(ctx, n.name(key))
}

// Save implements [refresh.TokenStore]: it saves tok under key's name.
func (n *namer) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return n.next.Save(ctx, n.name(key), tok)
}

// capabilities are the optional methods of next, each called with key's
// name.
func (n *namer) capabilities() caps.Methods {
	var m caps.Methods
	if l, ok := n.next.(refresh.Locker); ok {
		m.Lock = func(ctx context.Context, key string) (func(), error) { return l.Lock(ctx, n.name(key)) }
	}
	if l, ok := n.next.(refresh.TryLocker); ok {
		m.TryLock = func(ctx context.Context, key string) (func(), bool, error) { return l.TryLock(ctx, n.name(key)) }
	}
	if c, ok := n.next.(refresh.CompareAndSwapper); ok {
		m.CompareAndSwap = func(ctx context.Context, key string, old, new *oauth2.Token) error {
			return c.CompareAndSwap(ctx, n.name(key), old, new)
		}
	}
	if d, ok := n.next.(refresh.Deleter); ok {
		m.Delete = func(ctx context.Context, key string) error { return d.Delete(ctx, n.name(key)) }
	}
	return m
}
