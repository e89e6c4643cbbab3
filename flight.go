package refresh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// run is one flight of the refresh protocol for one key (see flight).
type run struct {
	e        *Engine
	key      string
	ent      *entry
	rejected *snapshot // the snapshot the flight is to replace
	early    bool      // rejected is due for refresh, not refused by the API

	cur    *snapshot     // the published snapshot when the flight began
	base   *oauth2.Token // the token refreshed from (step 4 decides)
	unlock func()        // the key's cross-process lock, when taken (step 2)
	after  []func()      // hooks, run once ent.mu is released
}

// flight is the refresh protocol for one key. It runs under the key's
// singleflight, so once per key at a time in this process, under ent.mu, on
// a context detached from the caller's. Its steps are numbered as in
// docs/ARCHITECTURE.md:
//
//  1. generation check: someone may have replaced the rejected token;
//  2. the store's cross-process lock, if it has one;
//  3. catch the store up with a token whose save failed;
//  4. re-read the store: adopt a newer token, or take its refresh token;
//  5. call the token endpoint;
//  6. persist the new token;
//  7. publish it.
//
// early means the flight was started because rejected is due for refresh
// (within the skew of its expiry), not because the API refused it.
func (e *Engine) flight(callerCtx context.Context, key string, ent *entry, rejected *snapshot, early bool) (res *snapshot, err error) {
	r := &run{e: e, key: key, ent: ent, rejected: rejected, early: early}
	ent.mu.Lock()
	defer r.end(&res, &err)
	return r.protocol(callerCtx)
}

func (r *run) protocol(callerCtx context.Context) (*snapshot, error) {
	r.cur = r.ent.cur.Load()
	if s, err, done := r.check(); done {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), r.e.timeout)
	defer cancel()
	if x := r.lock(ctx); x != nil {
		return r.temporary(x)
	}
	if r.ent.pending != nil {
		r.e.savePending(ctx, r.key, r.ent, &r.after) // step 3
	}
	if s, err, done := r.reread(ctx); done {
		return s, err
	}
	nt, s, x := r.refresh(ctx)
	switch {
	case s != nil:
		return s, nil
	case x == nil:
		return r.persist(callerCtx, ctx, nt)
	case x.Temporary():
		return r.temporary(x)
	}
	// Sending this refresh token again cannot help and may be a reuse:
	// nothing more until the key gets a new token.
	if x.Code == "invalid_request" && x.Err == nil {
		x.Err = ErrReauthRequired
	}
	return r.e.latch(r.ent, r.key, r.base, x, &r.after)
}

// end finishes the flight: it keeps the key's cross-process lock while a
// token is not saved (no other process may spend the store's older refresh
// token meanwhile), or releases it; then it unlocks the key and runs the
// hooks.
func (r *run) end(res **snapshot, err *error) {
	if recover() != nil {
		// A fault of ours (user code is guarded). A received token is in
		// ent.pending already; it stays in use and is saved later.
		*res, *err = nil, &Error{Key: r.key, Err: panicError{"refresh"}}
		r.e.logError("refresh panicked", r.key, nil)
		if p := r.ent.pending; p != nil && r.ent.cur.Load() != p {
			r.ent.publish(p)
			r.e.retryLater(r.key, r.ent, p)
		}
	}
	if r.unlock != nil {
		if r.ent.pending != nil {
			r.ent.held = r.unlock
		} else {
			r.unlock()
		}
	}
	r.ent.mu.Unlock()
	if len(r.after) > 0 {
		// Let a hook that asks the engine for this key start a new
		// flight instead of joining (and waiting for) this one.
		r.e.flights.Forget(r.key)
	}
	r.e.runHooks(r.key, r.after)
}

// check is step 1, the generation check: another flight or SetToken may
// have replaced the rejected token while this one waited; a latched key
// stays latched until its recheck time; a key that failed moments ago
// cools down. It reports whether the flight is done.
func (r *run) check() (*snapshot, error, bool) {
	cur, now := r.cur, time.Now()
	switch {
	case cur != r.rejected && cur.usable():
		return cur, nil, true
	case cur != nil && cur.latch != nil && now.Before(cur.recheckAt):
		return nil, cur.latch, true
	case r.e.closed.Load():
		return nil, &Error{Key: r.key, Err: ErrClosed}, true
	case now.Before(r.ent.coolUntil):
		if r.stillValid() {
			return cur, nil, true
		}
		return nil, r.ent.coolErr, true
	}
	return nil, nil, false
}

// lock is step 2: with a store that can lock across processes, hold the
// key's lock from the re-read to the save, so that one process refreshes and
// the others adopt its token in step 4. A lock kept since a failed save is
// taken over: the store's locks are not reentrant.
func (r *run) lock(ctx context.Context) *Error {
	l, ok := r.e.store.(Locker)
	switch {
	case !ok:
		return nil
	case r.ent.held != nil:
		r.unlock, r.ent.held = r.ent.held, nil
		return nil
	}
	if r.stillValid() {
		// Nobody needs a new token yet: do not keep callers waiting
		// behind another process's lock (one kept for a save that fails
		// can be held for minutes); the valid token keeps serving.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, earlyLockWait)
		defer cancel()
	}
	unlock, err := storeLock(ctx, l, r.key)
	if err != nil {
		return &Error{Key: r.key, Err: fmt.Errorf("store lock: %w", cleanErr(err, r.secrets()...)), temporary: true}
	}
	r.unlock = unlock
	return nil
}

// reread is step 4: re-read the store, unless it is known to be behind
// memory. Another process, or the user after a login, may have stored a
// newer token: it is adopted without calling the endpoint, or, if it is due
// itself, refreshed with its refresh token, the newest of the lineage. It
// sets r.base, or reports that the flight is done.
func (r *run) reread(ctx context.Context) (*snapshot, error, bool) {
	e, ent := r.e, r.ent
	var mem *oauth2.Token // the newest token this process knows
	if r.cur != nil {
		mem = r.cur.tok
	}
	r.base = mem
	if ent.pending == nil {
		stored, err := e.storeLoad(ctx, r.key)
		switch {
		case errors.Is(err, ErrNotFound):
			ent.seen, ent.seenOK = nil, true
			if mem == nil {
				s, err := e.latch(ent, r.key, nil, errors.New("no token stored for this key"), &r.after)
				return s, err, true
			}
		case err != nil:
			s, err := r.temporary(&Error{Key: r.key, Err: fmt.Errorf("store load: %w", cleanErr(err, r.secrets()...)), temporary: true})
			return s, err, true
		case stored == nil:
			s, err := r.temporary(&Error{Key: r.key, Err: errors.New("store load: store returned no token and no error"), temporary: true})
			return s, err, true
		default:
			ent.seen, ent.seenOK = copyToken(stored), true
			if !SameToken(stored, mem) {
				if ns := e.adoptStored(r.key, ent, stored, "adopted stored token"); ns != nil {
					return ns, nil, true
				}
				r.base = copyToken(stored)
			}
		}
	}
	switch {
	case r.cur != nil && r.cur.latch != nil && r.base == r.cur.tok:
		s, err := e.latch(ent, r.key, r.cur.tok, r.cur.latch, &r.after)
		return s, err, true
	case r.base.RefreshToken == "":
		s, err := e.latch(ent, r.key, r.base, errors.New("token has no refresh token"), &r.after)
		return s, err, true
	}
	return nil, nil, false
}

// refresh is step 5: call the token endpoint with r.base's refresh token.
// Only temporary failures are tried again with the same refresh token, a
// bounded number of times, and not if a peer saved a newer token meanwhile.
// ory/fosite answers the loser of two concurrent refreshes with
// invalid_request: a peer may have won. A peer's token, once stored, is
// adopted (s), or refreshed if it is due itself; the refresh token that lost
// is never sent again.
func (r *run) refresh(ctx context.Context) (nt *oauth2.Token, s *snapshot, x *Error) {
	nt, peer, x := r.e.call(ctx, r.key, r.base, func() *oauth2.Token {
		return r.e.peerToken(ctx, r.key, r.ent, r.base)
	})
	if peer == nil && x != nil && x.Code == "invalid_request" {
		peer = r.e.awaitPeer(ctx, r.key, r.ent, r.base)
	}
	if peer == nil {
		return nt, nil, x
	}
	r.ent.seen, r.ent.seenOK = copyToken(peer), true
	if s := r.e.adoptStored(r.key, r.ent, peer, "adopted the token of a concurrent refresh"); s != nil {
		return nil, s, nil
	}
	r.base = peer
	nt, _, x = r.e.call(ctx, r.key, r.base, nil)
	return nt, nil, x
}

// persist is steps 6 and 7: save the new token, then publish it. From the
// moment it is received, the new token is the only valid one (the server may
// have invalidated the old refresh token): it is recorded as pending before
// anything that can fail, so that no error, panic or conflict loses it. If
// the save fails, it is used from memory and saved again later, and the
// key's cross-process lock is kept meanwhile (see end).
func (r *run) persist(callerCtx, ctx context.Context, nt *oauth2.Token) (*snapshot, error) {
	e, ent := r.e, r.ent
	nt = copyToken(nt)
	if nt.RefreshToken == "" {
		nt.RefreshToken = r.base.RefreshToken // RFC 6749 §6: the old one stays valid
	}
	if !nt.Expiry.IsZero() && !nt.Expiry.After(time.Now()) {
		// A non-positive expires_in: refreshing again at once would loop,
		// so the token is used until the API rejects it.
		nt.Expiry, nt.ExpiresIn = time.Time{}, 0
	}
	ns := e.newSnapshot(r.key, nt)
	ent.setPending(ns)

	// The save has a timeout of its own, so that a slow refresh leaves it
	// its time.
	sctx, scancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	serr := e.save(sctx, r.key, ent, nt)
	scancel()
	switch {
	case serr == nil: // saved: nothing is pending any more
	case errors.Is(serr, ErrConflict):
		return r.conflict(ctx, ns)
	default:
		e.saveFailed(r.key, ent, nt, serr, &r.after)
		e.retryLater(r.key, ent, ns)
	}
	ent.publish(ns)
	e.logInfo("token refreshed", r.key, nt)
	if h := e.hooks.Refreshed; h != nil {
		r.after = append(r.after, func() { h(r.key) })
	}
	if ns.auth == nil {
		// Saved, so its refresh token is not lost, but not sendable; it is
		// not refreshed again before its expiry, which would loop.
		e.failed(r.key, ns.bad, &r.after)
		return nil, ns.bad
	}
	return ns, nil
}

// conflict handles a save refused because someone else saved a newer token
// while this refresh ran (a holder whose lease expired, a store without a
// lock, a login in another process; see Engine.save). The stored token
// wins: ours is not written over it. If the store cannot be read, ours,
// valid, serves from memory meanwhile, and the next flight reads the store
// again.
func (r *run) conflict(ctx context.Context, ours *snapshot) (*snapshot, error) {
	e, ent := r.e, r.ent
	ent.pending, ent.tried = nil, nil
	stored, err := e.storeLoad(ctx, r.key)
	if err != nil || stored == nil {
		ent.seenOK = false
		ent.publish(ours)
		e.logWarn("a newer token was saved during this refresh, and the store cannot be read; using ours until it can", r.key, ours.tok, nil)
		if ours.auth == nil {
			return nil, ours.bad
		}
		return ours, nil
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	ns := unsendable(e.newSnapshot(r.key, copyToken(stored)))
	ent.publish(ns)
	e.logWarn("a newer token was saved during this refresh; adopting it and dropping ours", r.key, stored, nil)
	if ns.auth == nil {
		return nil, ns.bad
	}
	return ns, nil
}

// temporary records a temporary failure x of the flight: the key cools
// down, and an early flight keeps serving the still-valid token it was
// started for, trying again later rather than on every request.
func (r *run) temporary(x *Error) (*snapshot, error) {
	r.e.failed(r.key, x, &r.after)
	r.ent.coolUntil, r.ent.coolErr = time.Now().Add(cooldown(x)), x
	if r.stillValid() {
		r.ent.postpone(r.cur)
		return r.cur, nil
	}
	return nil, x
}

// stillValid reports whether the flight was started early for the token in
// use, which has not expired: it can keep serving.
func (r *run) stillValid() bool {
	c := r.cur
	return r.early && c == r.rejected && c != nil && c.auth != nil && time.Now().Before(c.tok.Expiry)
}

// secrets are the token values the flight knows, to be redacted from the
// errors of user code.
func (r *run) secrets() []string {
	var cur *oauth2.Token
	if r.cur != nil {
		cur = r.cur.tok
	}
	return r.ent.secrets(r.base, cur)
}

// latch publishes that refreshing key cannot help, usually because the
// user must log in again: no token-endpoint call until SetToken or a new
// token in the store. A cause that is not an *Error means re-authentication.
func (e *Engine) latch(ent *entry, key string, tok *oauth2.Token, cause error, after *[]func()) (*snapshot, error) {
	x, ok := cause.(*Error)
	if !ok {
		x = &Error{Key: key, Err: fmt.Errorf("%w: %v", ErrReauthRequired, cause)}
	}
	cur := ent.cur.Load()
	ent.publish(&snapshot{tok: tok, latch: x, recheckAt: time.Now().Add(reauthRecheck)})
	if cur != nil && cur.latch != nil {
		return nil, x // still latched: already reported
	}
	if errors.Is(x, ErrReauthRequired) {
		e.logError("re-authentication required", key, x)
	} else {
		e.logError("refresh failed; not retrying with this refresh token", key, x)
	}
	if h := e.hooks.RefreshFailed; h != nil {
		*after = append(*after, func() { h(key, x) })
	}
	if h := e.hooks.ReauthRequired; h != nil && errors.Is(x, ErrReauthRequired) {
		*after = append(*after, func() { h(key, x) })
	}
	return nil, x
}

func (e *Engine) failed(key string, err error, after *[]func()) {
	e.logError("refresh failed", key, err)
	if h := e.hooks.RefreshFailed; h != nil {
		*after = append(*after, func() { h(key, err) })
	}
}
