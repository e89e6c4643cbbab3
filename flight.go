package refresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
// bounded number of times. ory/fosite answers the loser of two concurrent
// refreshes with invalid_request: a peer may have won, and its token, once
// stored, is adopted (s), or refreshed if it is due itself; the refresh
// token that lost is never sent again.
func (r *run) refresh(ctx context.Context) (nt *oauth2.Token, s *snapshot, x *Error) {
	nt, x = r.e.call(ctx, r.key, r.base)
	if x == nil || x.Code != "invalid_request" {
		return nt, nil, x
	}
	stored := r.e.awaitPeer(ctx, r.key, r.ent, r.base)
	if stored == nil {
		return nil, nil, x
	}
	r.ent.seen, r.ent.seenOK = copyToken(stored), true
	if s := r.e.adoptStored(r.key, r.ent, stored, "adopted the token of a concurrent refresh"); s != nil {
		return nil, s, nil
	}
	r.base = stored
	nt, x = r.e.call(ctx, r.key, r.base)
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

// call calls the endpoint with base's refresh token, again after a
// temporary failure, up to e.attempts times within ctx's deadline.
func (e *Engine) call(ctx context.Context, key string, base *oauth2.Token) (*oauth2.Token, *Error) {
	delay := retryBase
	for attempt := 1; ; attempt++ {
		nt, err := e.endpointRefresh(ctx, copyToken(base))
		if err == nil && (nt == nil || nt.AccessToken == "") {
			err = fmt.Errorf("%w: token endpoint returned no access token", ErrReauthRequired)
		}
		if err == nil {
			return nt, nil
		}
		x := classify(key, err, base)
		if !x.Temporary() || attempt >= e.attempts {
			return nil, x
		}
		wait := max(delay/2+rand.N(delay/2+1), x.RetryAfter)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return nil, x // no time left for another attempt
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, x
		}
		delay = min(2*delay, retryMax)
	}
}

// cooldown is how long a key waits after a temporary failure.
func cooldown(x *Error) time.Duration {
	return max(retryBase, x.RetryAfter)
}

// awaitPeer re-reads the store, a few times over about a second, for a
// token that a concurrent refresh may be about to save: newer than base,
// and not one of this engine's own (the older token a failed save left in
// the store is not a peer's, and its refresh token is spent).
func (e *Engine) awaitPeer(ctx context.Context, key string, ent *entry, base *oauth2.Token) *oauth2.Token {
	wait := 100 * time.Millisecond
	for range 4 {
		t, err := e.storeLoad(ctx, key)
		if err == nil && t != nil && t.RefreshToken != "" && t.RefreshToken != base.RefreshToken && !ent.ours(t) {
			return copyToken(t)
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		wait *= 2
	}
	return nil
}

func (e *Engine) failed(key string, err error, after *[]func()) {
	e.logError("refresh failed", key, err)
	if h := e.hooks.RefreshFailed; h != nil {
		*after = append(*after, func() { h(key, err) })
	}
}
