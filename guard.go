package refresh

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"golang.org/x/oauth2"
)

// ErrPanic is wrapped by the error of a call into user code (a store, an
// endpoint) that panicked. The engine recovers every such panic: it never
// crashes the program or stalls a key, and it never prints the panic's
// value, which may hold a token.
var ErrPanic = errors.New("refresh: user code panicked")

// panicError reports that the user code named by what panicked.
type panicError struct{ what string }

func (p panicError) Error() string        { return p.what + " panicked" }
func (p panicError) Is(target error) bool { return target == ErrPanic }

// Every call into user code goes through one of the functions below, which
// turn a panic into an error (or, for logging, into nothing): a panic in a
// flight, which runs on a goroutine of its own (group.go), or in a
// background save would be out of any caller's reach and end the program.

func (e *Engine) storeLoad(ctx context.Context, key string) (tok *oauth2.Token, err error) {
	defer recovered(&err, "store Load")
	tok, err = e.store.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	return tok, nil
}

func (e *Engine) storeSave(ctx context.Context, key string, tok *oauth2.Token) (err error) {
	defer recovered(&err, "store Save")
	return e.store.Save(ctx, key, tok)
}

func storeCAS(ctx context.Context, cas CompareAndSwapper, key string, old, new *oauth2.Token) (err error) {
	defer recovered(&err, "store CompareAndSwap")
	return cas.CompareAndSwap(ctx, key, old, new)
}

// storeLock takes the key's cross-process lock. The unlock it returns
// recovers a panic of the store's own and may be called more than once
// (only the first call reaches the store); it is always called with the
// key's entry.mu held, which orders those calls.
func storeLock(ctx context.Context, l Locker, key string) (unlock func(), err error) {
	defer recovered(&err, "store Lock")
	u, err := l.Lock(ctx, key)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, errors.New("store Lock returned no unlock function")
	}
	return guardUnlock(u), nil
}

// guardUnlock wraps a store's unlock: see storeLock.
func guardUnlock(u func()) func() {
	return func() {
		if u == nil {
			return
		}
		f := u
		u = nil
		defer func() { recover() }() // the lock's own fallback releases it
		f()
	}
}

// storeTryLock is storeLock for TryLock: a held lock is a nil unlock and a
// nil error.
func storeTryLock(ctx context.Context, l TryLocker, key string) (unlock func(), err error) {
	defer recovered(&err, "store TryLock")
	u, ok, err := l.TryLock(ctx, key)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, nil
	case u == nil:
		return nil, errors.New("store TryLock returned no unlock function")
	}
	return guardUnlock(u), nil
}

func (e *Engine) storeDelete(ctx context.Context, d Deleter, key string) (err error) {
	defer recovered(&err, "store Delete")
	return d.Delete(ctx, key)
}

func (e *Engine) endpointRevoke(ctx context.Context, rv Revoker, tok *oauth2.Token) (err error) {
	defer recovered(&err, "token revocation")
	return rv.Revoke(ctx, tok)
}

func (e *Engine) endpointFetch(ctx context.Context, key string) (nt *oauth2.Token, err error) {
	defer recovered(&err, "token endpoint")
	return e.fetcher.Fetch(withFetch(ctx, e, key), key)
}

func (e *Engine) endpointRefresh(ctx context.Context, tok *oauth2.Token) (nt *oauth2.Token, err error) {
	defer recovered(&err, "token endpoint")
	return e.endpoint.Refresh(ctx, tok)
}

// recovered, deferred, turns a panic into *err.
func recovered(err *error, what string) {
	if recover() != nil {
		*err = panicError{what}
	}
}

// consultNeedsRefresh calls Config.NeedsRefresh; a panic counts as "no".
func (e *Engine) consultNeedsRefresh(resp *http.Response) (yes bool) {
	defer func() {
		if recover() != nil {
			yes = false
			e.logError("NeedsRefresh panicked", "", nil)
		}
	}()
	return e.needsRefresh(resp)
}

// logAttrs writes one record; a Logger whose handler panics loses the
// record, nothing else.
func (e *Engine) logAttrs(level slog.Level, msg string, attrs ...slog.Attr) {
	if e.log == nil {
		return
	}
	defer func() { recover() }()
	e.log.LogAttrs(context.Background(), level, msg, attrs...)
}
