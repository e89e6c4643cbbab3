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
	trigger  Trigger   // why: TriggerRejected if the API refused it

	cur    *snapshot     // the published snapshot when the flight began
	base   *oauth2.Token // the token refreshed from (step 4 decides)
	unlock func()        // the key's cross-process lock, when taken (step 2)
	ev     *Event        // the flight's event, emitted once ent.mu is released
}

// flight is the refresh protocol for one key. It runs under the key's
// group (group.go), so once per key at a time in this process, under ent.mu, on
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
// trigger says why the flight was started; callers returns, as the flight
// ends, the callers that waited for it (see group.do).
func (e *Engine) flight(callerCtx context.Context, key string, ent *entry, rejected *snapshot, trigger Trigger, callers func() []context.Context) (res *snapshot, err error) {
	ent.mu.Lock()
	if ent.gone {
		ent.mu.Unlock()
		return nil, errGone // see await
	}
	r := &run{e: e, key: key, ent: ent, rejected: rejected, trigger: trigger,
		ev: e.startEvent(EventRefresh, key, trigger, rejected)}
	defer r.end(&res, &err, callers)
	return r.protocol(callerCtx)
}

func (r *run) protocol(callerCtx context.Context) (*snapshot, error) {
	r.cur = r.ent.cur.Load()
	if s, err, done := r.check(); done {
		return s, err
	}
	ctx, cancel := context.WithTimeout(r.e.storeContext(callerCtx, r.key), r.e.timeout)
	defer cancel()
	switch busy, x := r.lock(ctx); {
	case x != nil:
		return r.temporary(x)
	case busy:
		return r.deferred()
	}
	if r.ent.pending() != nil {
		r.e.savePending(ctx, r.key, r.ent) // step 3
	}
	if s, err, done := r.reread(ctx); done {
		return s, err
	}
	nt, s, x := r.refresh(ctx)
	if x != nil && !x.Temporary() && !r.fetches() && r.e.fetcher != nil {
		// The grant's refresh token is refused: the grant gets a new
		// token instead, as it would without one.
		r.base = nil
		nt, s, x = r.refresh(ctx)
	}
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
		if r.fetches() {
			x.Err = errGrantRefused
		}
	}
	return r.latch(r.base, x)
}

// end finishes the flight: it keeps the key's cross-process lock while a
// token is not saved (no other process may spend the store's older refresh
// token meanwhile), or releases it; then it unlocks the key and emits the
// flight's event.
func (r *run) end(res **snapshot, err *error, callers func() []context.Context) {
	if recover() != nil {
		// A fault of ours (user code is guarded). A received token is
		// pending already; it stays in use and is saved later.
		*res, *err = nil, &Error{Key: r.key, Err: panicError{"refresh"}}
		r.e.logError("refresh panicked", r.key, nil)
		if p := r.ent.pending(); p != nil && r.ent.cur.Load() != p {
			r.e.publish(r.ent, p)
			r.e.retryLater(r.key, r.ent, p)
		}
	}
	r.ent.keepOrRelease(r.unlock)
	if c := r.ent.cur.Load(); c != nil && !r.ent.gone && c.due.Load() == renewed {
		// An early refresh of c was not started because this flight ran,
		// and this one neither replaced c nor scheduled it again.
		r.e.postpone(c)
	}
	r.ent.tidy()
	r.ent.mu.Unlock()
	r.ev.finish(*res, *err, callers())
	r.e.emit(r.ev)
}

// check is step 1, the generation check: another flight or SetToken may
// have replaced the rejected token while this one waited; a latched key
// stays latched until its recheck time; a key that failed moments ago
// cools down. It reports whether the flight is done.
func (r *run) check() (*snapshot, error, bool) {
	cur, x := r.cur, r.ent.x.Load()
	switch {
	case cur != r.rejected && cur.usable():
		r.ev.Outcome = OutcomeAdoptedMemory
		return cur, nil, true
	case cur.holds():
		r.ev.Repeated = true
		return nil, cur.err(r.key), true
	case r.e.closed.Load():
		return nil, &Error{Key: r.key, Err: ErrClosed}, true
	case x != nil && time.Now().Before(x.coolUntil):
		r.ev.Repeated = true
		if r.stillValid() {
			r.ev.Outcome = OutcomeTemporary
			return cur, nil, true
		}
		return nil, x.coolErr, true
	}
	return nil, nil, false
}

// lock is step 2: with a store that can lock across processes, hold the
// key's lock from the re-read to the save, so that one process refreshes and
// the others adopt its token in step 4. A lock kept since a failed save is
// taken over: the store's locks are not reentrant.
//
// An early flight (the token is due but valid) does not queue behind
// another process's lock, which may be held for minutes while that
// process's save fails: with a TryLocker it takes the lock only if it is
// free, else it waits at most earlyLockWait. It reports busy if the lock is
// held: the valid token keeps serving, and the holder is refreshing.
func (r *run) lock(ctx context.Context) (busy bool, x *Error) {
	l, ok := r.e.store.(Locker)
	if !ok {
		return false, nil
	}
	if x := r.ent.x.Load(); x != nil && x.held != nil {
		r.unlock, x.held = x.held, nil
		return false, nil
	}
	lock := func() (func(), error) { return storeLock(ctx, l, r.key) }
	early := r.stillValid()
	if tl, ok := l.(TryLocker); ok && early {
		lock = func() (func(), error) { return storeTryLock(ctx, tl, r.key) }
	} else if early {
		wait, cancel := context.WithTimeout(ctx, earlyLockWait)
		defer cancel()
		lock = func() (func(), error) { return storeLock(wait, l, r.key) }
	}
	unlock, err := r.ev.timeLock(lock)
	switch {
	case err == nil && unlock == nil, early && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return true, nil
	case err != nil:
		return false, &Error{Key: r.key, Err: fmt.Errorf("store lock: %w", cleanErr(err, r.secrets()...)), temporary: true}
	}
	r.unlock = unlock
	return false, nil
}

// deferred ends an early flight that found another process holding the
// key's lock: that process is refreshing. The valid token keeps serving,
// and the next request after the postponed refresh time tries again, by
// then most likely adopting the holder's token. Not a failure: no
// cooldown.
func (r *run) deferred() (*snapshot, error) {
	r.ev.Outcome = OutcomeDeferred
	r.e.postpone(r.cur)
	return r.cur, nil
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
	if ent.pending() == nil {
		stored, err := r.ev.timeLoad(func() (*oauth2.Token, error) { return e.storeLoad(ctx, r.key) })
		switch {
		case errors.Is(err, ErrNotFound) && e.fetcher != nil:
			ent.seen, ent.seenOK, r.base = nil, true, nil // the grant gets one
		case errors.Is(err, ErrNotFound):
			// No token, or it was deleted (a logout, maybe in another
			// process): the key needs a login, and a token this process
			// still has must not bring it back.
			s, err := r.gone(mem)
			return s, err, true
		case err != nil:
			s, err := r.temporary(&Error{Key: r.key, Err: fmt.Errorf("store load: %w", cleanErr(err, r.secrets()...)), temporary: true})
			return s, err, true
		case stored == nil:
			s, err := r.temporary(&Error{Key: r.key, Err: errors.New("store load: store returned no token and no error"), temporary: true})
			return s, err, true
		case SameToken(stored, mem):
			ent.seen, ent.seenOK = mem, true // one copy of the token
		case r.trigger == TriggerRejected && r.rejected != nil && SameToken(stored, r.rejected.tok):
			// The API rejected this very token, sent from an entry since
			// forgotten: refresh it rather than adopt it again.
			r.base = copyToken(stored)
			ent.seen, ent.seenOK = r.base, true
		default:
			ns, c := e.adoptStored(r.key, ent, stored, "adopted stored token")
			ent.seen, ent.seenOK = c, true
			if ns != nil {
				r.ev.Outcome = OutcomeAdoptedStore
				return ns, nil, true
			}
			r.base = c
		}
	}
	switch {
	case r.fetches():
		// No refresh token, and a grant that needs none (step 5).
	case r.cur != nil && r.cur.state == latched && r.base == r.cur.tok:
		s, err := r.latch(r.cur.tok, r.cur.err(r.key))
		return s, err, true
	case r.base.RefreshToken == "":
		s, err := r.latch(r.base, errors.New("token has no refresh token"))
		return s, err, true
	}
	return nil, nil, false
}

// gone ends the flight of a key the store has no token for: never stored,
// or deleted (a logout, perhaps in another process). The key needs a login.
// Its entry is removed, so that it leaves nothing behind, and mem, a token
// this process still holds, is not brought back by a refresh and a save.
func (r *run) gone(mem *oauth2.Token) (*snapshot, error) {
	x := &Error{Key: r.key, Err: fmt.Errorf("%w: no token stored for this key", ErrReauthRequired)}
	if mem != nil {
		r.e.logError("the key's token was deleted from the store; re-authentication required", r.key, x)
	}
	r.e.drop(r.ent)
	return nil, x
}
