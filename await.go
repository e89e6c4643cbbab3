package refresh

import (
	"context"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// acquire returns a usable snapshot for a key whose current one, s, is not:
// missing, expired, latched or unsendable.
func (e *Engine) acquire(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if s != nil {
		if s.latch != nil && time.Now().Before(s.recheckAt) {
			return nil, s.latch
		}
		// An unsendable token is refreshed unless there is nothing to
		// refresh it with, or it came from a refresh (see unsendable).
		if s.bad != nil && (s.tok.RefreshToken == "" || s.refreshAt.IsZero() || time.Now().Before(s.refreshAt)) {
			return nil, s.bad
		}
	}
	return e.await(ctx, key, ent, s, s != nil && s.auth != nil)
}

// rejected returns the snapshot to retry with after the API rejected s: the
// current one if another caller already replaced s, else a refreshed one.
func (e *Engine) rejected(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if cur := ent.cur.Load(); cur != s && cur.usable() {
		return cur, nil
	}
	return e.await(ctx, key, ent, s, false)
}

// adopt returns a token newer than s, from memory or from the store, for a
// request whose retry with s was rejected too. It never calls the token
// endpoint; without a newer token it returns s.
func (e *Engine) adopt(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if cur := ent.cur.Load(); cur != s && cur.usable() {
		return cur, nil
	}
	return e.join(ctx, &e.adopts, key, func() (*snapshot, error) {
		return e.adoptFlight(ctx, key, ent, s)
	})
}

// adoptFlight is step 4 of the protocol alone: under the key's locks,
// re-read the store and publish a newer usable token if it holds one.
func (e *Engine) adoptFlight(callerCtx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if cur := ent.cur.Load(); cur != s {
		if cur.usable() {
			return cur, nil
		}
		return s, nil
	}
	if ent.pending != nil {
		return s, nil // the store is behind memory
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	defer cancel()
	if l, ok := e.store.(Locker); ok {
		unlock, err := storeLock(ctx, l, key)
		if err != nil {
			return s, nil
		}
		defer unlock()
	}
	stored, err := e.storeLoad(ctx, key)
	if err != nil || stored == nil || SameToken(stored, s.tok) {
		return s, nil
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	if ns := e.adoptStored(key, ent, stored, "adopted stored token"); ns != nil {
		return ns, nil
	}
	return s, nil
}

// adoptStored publishes stored, just read from the store, as the key's token
// if it can be used now, and returns it; else it returns nil (the caller
// refreshes with its refresh token). Called with ent.mu held.
func (e *Engine) adoptStored(key string, ent *entry, stored *oauth2.Token, msg string) *snapshot {
	ns := unsendable(e.newSnapshot(key, copyToken(stored)))
	if !ns.fresh() {
		return nil
	}
	ent.publish(ns)
	e.logInfo(msg, key, ns.tok)
	return ns
}

// await joins the key's refresh flight, or starts one, to replace s. The
// flight runs detached from ctx; if ctx ends first, await returns ctx.Err()
// and the flight goes on for the others. early means s is still valid and
// only due for refresh (see flight).
func (e *Engine) await(ctx context.Context, key string, ent *entry, s *snapshot, early bool) (*snapshot, error) {
	for attempt := 0; ; attempt++ {
		got, err := e.join(ctx, &e.flights, key, func() (*snapshot, error) {
			return e.flight(ctx, key, ent, s, early)
		})
		if err != nil {
			return nil, err
		}
		// A flight started for an older token may publish the very
		// token this caller found rejected; then one more is needed.
		// (An early flight returns s itself when it keeps using it.)
		if got == s && s != nil && !early && attempt == 0 {
			continue
		}
		return got, nil
	}
}

// join runs fn as the flight of key in group g, or joins the one running,
// and waits for its result or for the end of ctx. Each purpose has a group
// of its own, so that no name derived from a key can meet another key.
//
// fn runs detached from ctx. It must not panic (user code is called through
// the guards of guard.go); if it does anyway, the panic becomes an error
// here, since singleflight would re-raise it on a goroutine of its own.
func (e *Engine) join(ctx context.Context, g *singleflight.Group, key string, fn func() (*snapshot, error)) (*snapshot, error) {
	ch := g.DoChan(key, func() (v any, err error) {
		defer func() {
			if recover() != nil {
				v, err = (*snapshot)(nil), &Error{Key: key, Err: panicError{"refresh"}}
				e.logError("refresh panicked", key, nil)
			}
		}()
		return fn()
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*snapshot), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
