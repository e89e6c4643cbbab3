package refresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/oauth2"
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
	ch := e.flights.DoChan(key+"\x00adopt", func() (any, error) {
		return e.adoptFlight(ctx, key, ent, s)
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

// adoptFlight is step 2 of flight alone: under the key's locks, re-read
// the store and publish a newer usable token if it holds one.
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
		unlock, err := l.Lock(ctx, key)
		if err != nil {
			return s, nil
		}
		defer unlock()
	}
	stored, err := e.store.Load(ctx, key)
	if err != nil || stored == nil || SameToken(stored, s.tok) {
		return s, nil
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	ns := unsendable(e.newSnapshot(key, copyToken(stored)))
	if !ns.fresh() {
		return s, nil
	}
	ent.publish(ns)
	e.logInfo("adopted stored token", key, ns.tok)
	return ns, nil
}

// await joins the key's refresh flight, or starts one, to replace s. The
// flight runs detached from ctx; if ctx ends first, await returns ctx.Err()
// and the flight goes on for the others. early means s is still valid and
// only due for refresh (see flight).
func (e *Engine) await(ctx context.Context, key string, ent *entry, s *snapshot, early bool) (*snapshot, error) {
	for attempt := 0; ; attempt++ {
		ch := e.flights.DoChan(key, func() (any, error) {
			return e.flight(ctx, key, ent, s, early)
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return nil, r.Err
			}
			got := r.Val.(*snapshot)
			// A flight started for an older token may publish the very
			// token this caller found rejected; then one more is needed.
			// (An early flight returns s itself when it keeps using it.)
			if got == s && s != nil && !early && attempt == 0 {
				continue
			}
			return got, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// flight is the refresh protocol for one key. It runs under the key's
// singleflight, so once per key at a time in this process, on a context
// detached from the caller's.
//
// early means the flight was started because rejected is due for refresh
// (within the skew of its expiry), not because the API refused it.
func (e *Engine) flight(callerCtx context.Context, key string, ent *entry, rejected *snapshot, early bool) (res *snapshot, err error) {
	var after []func() // hooks, run once the key is unlocked
	ent.mu.Lock()
	defer func() {
		if r := recover(); r != nil {
			// A panicking store or endpoint must not take down every
			// goroutine waiting on this flight. The value may hold a
			// token, so it is not printed.
			res, err = nil, &Error{Key: key, Err: errors.New("panic in token store or endpoint")}
			e.logError("refresh panicked", key, nil)
		}
		ent.mu.Unlock()
		if len(after) > 0 {
			// Let a hook that asks the engine for this key start a new
			// flight instead of joining (and waiting for) this one.
			e.flights.Forget(key)
		}
		for _, f := range after {
			f()
		}
	}()

	now := time.Now()
	cur := ent.cur.Load()
	// Step 1: the generation check. Someone (another flight, SetToken)
	// may have replaced the rejected token while this one waited.
	if cur != rejected && cur.usable() {
		return cur, nil
	}
	if cur != nil && cur.latch != nil && now.Before(cur.recheckAt) {
		return nil, cur.latch
	}
	if now.Before(ent.coolUntil) {
		// A refresh failed temporarily moments ago: do not call again yet.
		if early && cur == rejected && cur.auth != nil && now.Before(cur.tok.Expiry) {
			return cur, nil
		}
		return nil, ent.coolErr
	}

	ctx, cancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	defer cancel()

	// With a store that can lock across processes, hold the key's lock
	// from the re-read to the save: one process refreshes, the others wait
	// and then adopt its token in step 2.
	if l, ok := e.store.(Locker); ok {
		unlock, lerr := l.Lock(ctx, key)
		if lerr != nil {
			x := &Error{Key: key, Err: fmt.Errorf("store lock: %w", lerr), temporary: true}
			e.failed(key, x, &after)
			return nil, x
		}
		defer unlock() // deferred after the unlock of ent.mu, so it runs first
	}

	var mem *oauth2.Token // the newest token this process knows
	if cur != nil {
		mem = cur.tok
	}
	if ent.pending != nil {
		e.savePending(ctx, key, ent, &after)
	}

	// Step 2: re-read the store, unless it is known to be behind memory.
	// Another process, or the user after a login, may have stored a newer
	// token; then it is adopted without calling the endpoint.
	base := mem
	if ent.pending == nil {
		stored, lerr := e.store.Load(ctx, key)
		if lerr == nil && stored != nil {
			ent.seen, ent.seenOK = copyToken(stored), true
		} else if errors.Is(lerr, ErrNotFound) {
			ent.seen, ent.seenOK = nil, true
		}
		switch {
		case errors.Is(lerr, ErrNotFound):
			if mem == nil {
				return e.latch(ent, key, nil, errors.New("no token stored for this key"), &after)
			}
		case lerr != nil:
			rerr := &Error{Key: key, Err: fmt.Errorf("store load: %w", lerr), temporary: true}
			e.failed(key, rerr, &after)
			return nil, rerr
		case stored == nil:
			rerr := &Error{Key: key, Err: errors.New("store load: store returned no token and no error")}
			e.failed(key, rerr, &after)
			return nil, rerr
		case mem == nil || stored.AccessToken != mem.AccessToken || stored.RefreshToken != mem.RefreshToken:
			ns := unsendable(e.newSnapshot(key, copyToken(stored)))
			if ns.fresh() {
				ent.publish(ns)
				e.logInfo("adopted stored token", key, ns.tok)
				return ns, nil
			}
			base = ns.tok // expired: refresh with the newest refresh token
		default: // the store holds what we hold
			if cur != nil && cur.latch != nil {
				return e.latch(ent, key, cur.tok, cur.latch, &after)
			}
		}
	}
	if cur != nil && cur.latch != nil && base == cur.tok {
		return e.latch(ent, key, cur.tok, cur.latch, &after)
	}
	if base.RefreshToken == "" {
		return e.latch(ent, key, base, errors.New("token has no refresh token"), &after)
	}

	// Step 3: call the token endpoint. Only temporary failures are tried
	// again with the same refresh token, a bounded number of times.
	nt, x := e.call(ctx, key, base)
	if x != nil && x.Code == "invalid_request" {
		// ory/fosite answers the loser of two concurrent refreshes this
		// way: a peer may have won. Its token, once stored, is adopted;
		// the refresh token that lost is never sent again.
		if stored := e.awaitPeer(ctx, key, base); stored != nil {
			ent.seen, ent.seenOK = copyToken(stored), true
			ns := unsendable(e.newSnapshot(key, stored))
			if ns.fresh() {
				ent.publish(ns)
				e.logInfo("adopted the token of a concurrent refresh", key, ns.tok)
				return ns, nil
			}
			base = stored
			nt, x = e.call(ctx, key, base)
		}
	}
	if x != nil {
		if !x.Temporary() {
			// Sending this refresh token again cannot help and may be a
			// reuse: nothing more until the key gets a new token.
			if x.Code == "invalid_request" && x.Err == nil {
				x.Err = ErrReauthRequired
			}
			return e.latch(ent, key, base, x, &after)
		}
		e.failed(key, x, &after)
		ent.coolUntil, ent.coolErr = time.Now().Add(cooldown(x)), x
		if early && cur == rejected && cur.auth != nil && time.Now().Before(cur.tok.Expiry) {
			// The token has not expired yet: keep using it, and try
			// again later rather than on every request.
			ent.postpone(cur)
			return cur, nil
		}
		return nil, x
	}
	nt = copyToken(nt)
	if nt.RefreshToken == "" {
		nt.RefreshToken = base.RefreshToken // RFC 6749 §6: the old one stays valid
	}
	if !nt.Expiry.IsZero() && !nt.Expiry.After(time.Now()) {
		// A non-positive expires_in: refreshing again at once would loop,
		// so the token is used until the API rejects it.
		nt.Expiry, nt.ExpiresIn = time.Time{}, 0
	}

	// Step 4: persist before publish. If the save fails the new token is
	// still the only valid one (the server may have invalidated the old
	// refresh token), so it is used from memory and saved again later.
	ns := e.newSnapshot(key, nt)
	sctx, scancel := context.WithTimeout(context.WithoutCancel(callerCtx), e.timeout)
	serr := e.save(sctx, key, ent, nt)
	scancel()
	switch {
	case errors.Is(serr, ErrConflict):
		// Someone saved a newer token while this refresh ran (a holder
		// whose lease expired, or a store without a lock). The stored
		// token wins; ours is dropped rather than overwrite it.
		return e.adoptAfterConflict(ctx, key, ent, &after)
	case serr != nil:
		ent.pending = ns
		e.saveFailed(key, serr, &after)
		go e.retrySave(key, ent, ns)
	default:
		ent.pending = nil
	}
	// Step 5: publish.
	ent.publish(ns)
	e.logInfo("token refreshed", key, nt)
	if h := e.hooks.Refreshed; h != nil {
		after = append(after, func() { h(key) })
	}
	if ns.auth == nil {
		// Saved, so its refresh token is not lost, but not sendable; it is
		// not refreshed again before its expiry, which would loop.
		e.failed(key, ns.bad, &after)
		return nil, ns.bad
	}
	return ns, nil
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
		nt, err := e.endpoint.Refresh(ctx, copyToken(base))
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
// token newer than base that a concurrent refresh may be about to save.
func (e *Engine) awaitPeer(ctx context.Context, key string, base *oauth2.Token) *oauth2.Token {
	wait := 100 * time.Millisecond
	for range 4 {
		if t, err := e.store.Load(ctx, key); err == nil && t != nil && t.RefreshToken != "" && t.RefreshToken != base.RefreshToken {
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
