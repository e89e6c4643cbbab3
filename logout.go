package refresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/oauth2"
)

// Logout ends the login of key: it revokes the key's newest token at the
// authorization server when the endpoint can (a [Revoker], such as a
// [FormEndpoint] with a RevocationURL; RFC 7009), deletes it from the
// store, and forgets the key. It holds the key's cross-process lock
// meanwhile, so that no process refreshes the key during the logout. A
// process that still holds the key in memory finds it deleted at its next
// refresh and reports [ErrReauthRequired]: a deleted key is never brought
// back by a late save.
//
// A temporary failure of the revocation is tried again, as a refresh is,
// within ctx and the refresh timeout. If the revocation fails all the same,
// Logout still deletes and forgets the key and returns the revocation's
// *Error: the refresh token then stays valid at the server until it
// expires. If the store cannot delete (it is not a [Deleter], and the
// error wraps [errors.ErrUnsupported]), or fails to, or its lock or token
// cannot be had, Logout returns that error and the key stays as it was
// (or revoked).
func (e *Engine) Logout(ctx context.Context, key string) error {
	key = normalizeKey(key)
	if e.closed.Load() {
		return &Error{Key: key, Err: ErrClosed}
	}
	d, ok := e.store.(Deleter)
	if !ok {
		return &Error{Key: key, Err: fmt.Errorf("the store cannot delete tokens: %w", errors.ErrUnsupported)}
	}
	ent := e.lockEntry(key)
	defer ent.mu.Unlock()
	sctx, cancel := context.WithTimeout(e.storeContext(ctx, key), e.timeout)
	defer cancel()
	unlock, x := e.logoutLock(sctx, key, ent)
	if x != nil {
		return x
	}
	// A Logout that fails keeps the lock as a failed save does.
	defer ent.keepOrRelease(unlock)
	tok, x := e.newest(sctx, key, ent)
	if x != nil {
		return x
	}
	revoked := e.revoke(sctx, key, ent, tok)
	if err := e.storeDelete(sctx, d, key); err != nil {
		x := &Error{Key: key, Err: fmt.Errorf("store delete: %w", cleanErr(err, ent.secrets(tok)...))}
		if revoked != nil {
			return errors.Join(x, revoked)
		}
		return x
	}
	e.drop(ent)
	e.logInfo("logged out", key, tok)
	if revoked != nil {
		return revoked
	}
	return nil
}

// logoutLock takes the key's cross-process lock for Logout: the one kept
// since a failed save, or the store's; nil unlock for a store without
// locks. Called with ent.mu held.
func (e *Engine) logoutLock(ctx context.Context, key string, ent *entry) (unlock func(), x *Error) {
	if x := ent.x.Load(); x != nil && x.held != nil {
		unlock, x.held = x.held, nil
		return unlock, nil
	}
	l, ok := e.store.(Locker)
	if !ok {
		return nil, nil
	}
	unlock, err := storeLock(ctx, l, key)
	if err != nil {
		return nil, &Error{Key: key, Err: fmt.Errorf("store lock: %w", cleanErr(err, ent.secrets()...)), temporary: true}
	}
	return unlock, nil
}

// newest returns the key's newest token: the one whose save is pending, or
// the store's, or memory's; nil if there is none. Called with ent.mu held.
func (e *Engine) newest(ctx context.Context, key string, ent *entry) (*oauth2.Token, *Error) {
	if p := ent.pending(); p != nil {
		return p.tok, nil
	}
	stored, err := e.storeLoad(ctx, key)
	switch {
	case err == nil && stored != nil:
		return stored, nil
	case errors.Is(err, ErrNotFound):
		if c := ent.cur.Load(); c != nil {
			return c.tok, nil // nil when latched without a token
		}
		return nil, nil
	case err == nil:
		err = errors.New("store returned no token and no error")
	}
	return nil, &Error{Key: key, Err: fmt.Errorf("store load: %w", cleanErr(err, ent.secrets()...)), temporary: true}
}

// revoke revokes tok at the server if the endpoint can, trying a temporary
// failure again a few times. It returns nil if tok is revoked, there is no
// token, or the endpoint cannot revoke.
func (e *Engine) revoke(ctx context.Context, key string, ent *entry, tok *oauth2.Token) *Error {
	rv, ok := e.endpoint.(Revoker)
	if !ok || tok == nil {
		return nil
	}
	delay := retryBase
	for attempt := 1; ; attempt++ {
		err := e.endpointRevoke(ctx, rv, tok)
		if err == nil || errors.Is(err, ErrNoRevocation) {
			return nil
		}
		x := revocationFailure(key, err, ent.secrets(tok))
		if !x.Temporary() || attempt >= e.attempts {
			e.logWarn("revoking the token failed; deleting it anyway", key, tok, x)
			return x
		}
		t := time.NewTimer(max(delay/2+rand.N(delay/2+1), x.RetryAfter))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return x
		}
		delay = min(2*delay, retryMax)
	}
}

// revocationFailure is err, from Revoke, as an *Error of key, cleaned of
// secrets.
func revocationFailure(key string, err error, secrets []string) *Error {
	var x *Error
	if errors.As(err, &x) {
		c := *x
		c.Key = key
		c.clean(secrets...)
		return &c
	}
	return &Error{Key: key, Err: fmt.Errorf("revocation: %w", cleanErr(err, secrets...)), temporary: isNetError(err)}
}
