package refresh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// refresh is step 5: call the token endpoint with r.base's refresh token.
// Only temporary failures are tried again with the same refresh token, a
// bounded number of times, and not if a peer saved a newer token meanwhile.
// ory/fosite answers the loser of two concurrent refreshes with
// invalid_request: a peer may have won. A peer's token, once stored, is
// adopted (s), or refreshed if it is due itself; the refresh token that lost
// is never sent again.
func (r *run) refresh(ctx context.Context) (nt *oauth2.Token, s *snapshot, x *Error) {
	if r.fetches() {
		nt, x := r.e.fetch(ctx, r.key, r.ev)
		return nt, nil, x
	}
	nt, peer, x := r.e.call(ctx, r.key, r.base, r.ev, func() *oauth2.Token {
		return r.e.peerToken(ctx, r.key, r.ent, r.base)
	})
	if peer == nil && x != nil && x.Code == "invalid_request" {
		peer = r.e.awaitPeer(ctx, r.key, r.ent, r.base)
	}
	if peer == nil {
		return nt, nil, x
	}
	s, c := r.e.adoptStored(r.key, r.ent, peer, "adopted the token of a concurrent refresh")
	r.ent.seen, r.ent.seenOK = c, true
	if s != nil {
		r.ev.Outcome = OutcomeAdoptedStore
		return nil, s, nil
	}
	r.base = c
	nt, _, x = r.e.call(ctx, r.key, r.base, r.ev, nil)
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
	nt = carryOver(nt, r.base) // a copy, keeping base's id_token and scope if nt has none
	if nt.RefreshToken == "" && !r.fetches() {
		nt.RefreshToken = r.base.RefreshToken // RFC 6749 §6: the old one stays valid
	}
	if !nt.Expiry.IsZero() && !nt.Expiry.After(time.Now()) {
		// A non-positive expires_in: refreshing again at once would loop,
		// so the token is used until the API rejects it.
		nt.Expiry, nt.ExpiresIn = time.Time{}, 0
	}
	ns := e.refreshedSnapshot(r.key, nt) // before nt is shared with the store
	e.setPending(ent, ns)

	// The save has a timeout of its own, so that a slow refresh leaves it
	// its time.
	sctx, scancel := context.WithTimeout(e.storeContext(callerCtx, r.key), e.timeout)
	start := time.Now()
	serr := e.save(sctx, r.key, ent, nt)
	r.ev.Save = time.Since(start)
	r.ev.Phases |= PhaseSave
	scancel()
	switch {
	case serr == nil: // saved: nothing is pending any more
	case errors.Is(serr, ErrConflict):
		r.ev.Outcome = OutcomeConflict
		return r.conflict(ctx, ns)
	default:
		e.saveFailed(r.key, ent, nt, serr)
		e.retryLater(r.key, ent, ns)
	}
	e.publish(ent, ns)
	e.logInfo("token refreshed", r.key, nt)
	r.ev.Outcome = OutcomeRefreshed
	if ns.state != sendable {
		// Saved, so its refresh token is not lost, but not sendable; it is
		// not refreshed again before its expiry, which would loop.
		r.fail(ns.why)
		return nil, ns.why
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
	e.dropPending(ent)
	stored, err := e.storeLoad(ctx, r.key)
	switch {
	case errors.Is(err, ErrNotFound):
		return r.gone(ours.tok) // deleted meanwhile: never brought back
	case err != nil || stored == nil:
		ent.seenOK = false
		e.publish(ent, ours)
		e.logWarn("a newer token was saved during this refresh, and the store cannot be read; using ours until it can", r.key, ours.tok, nil)
		if ours.state != sendable {
			return nil, ours.why
		}
		return ours, nil
	}
	ns := e.newSnapshot(r.key, copyToken(stored))
	ent.seen, ent.seenOK = ns.tok, true
	e.publish(ent, ns)
	e.logWarn("a newer token was saved during this refresh; adopting it and dropping ours", r.key, stored, nil)
	if ns.state != sendable {
		return nil, ns.why
	}
	return ns, nil
}

// temporary records a temporary failure x of the flight: the key cools
// down, and an early flight keeps serving the still-valid token it was
// started for, trying again later rather than on every request.
func (r *run) temporary(x *Error) (*snapshot, error) {
	r.fail(x)
	t := r.ent.trouble()
	t.coolUntil, t.coolErr = time.Now().Add(cooldown(x)), x
	if r.stillValid() {
		// The callers (if any joined) keep the valid token; the event
		// still tells of the failure.
		r.ev.Outcome, r.ev.Err = OutcomeTemporary, x
		r.e.postpone(r.cur)
		return r.cur, nil
	}
	return nil, x
}

// fetches reports whether the flight gets its token from the endpoint's
// Fetcher grant: there is no refresh token to refresh with.
func (r *run) fetches() bool {
	return r.e.fetcher != nil && (r.base == nil || r.base.RefreshToken == "")
}

// stillValid reports whether the flight was started early for the token in
// use (not because the API rejected it), which has not expired: it can keep
// serving.
func (r *run) stillValid() bool {
	c := r.cur
	return r.trigger != TriggerRejected && c == r.rejected && c != nil && c.state == sendable && time.Now().Before(c.tok.Expiry)
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

// latch publishes that refreshing the key cannot help, usually because the
// user must log in again: no token-endpoint call until SetToken or a new
// token in the store. A cause that is not an *Error means re-authentication.
func (r *run) latch(tok *oauth2.Token, cause error) (*snapshot, error) {
	x, ok := cause.(*Error)
	if !ok {
		x = &Error{Key: r.key, Err: fmt.Errorf("%w: %v", ErrReauthRequired, cause)}
	}
	cur := r.ent.cur.Load()
	l := &snapshot{tok: tok, state: latched, why: x}
	l.refreshAt.Store(mono() + int64(reauthRecheck))
	r.e.publish(r.ent, l)
	if cur != nil && cur.state == latched {
		r.ev.Repeated = true
		return nil, x // still latched: already reported
	}
	if errors.Is(x, ErrReauthRequired) {
		r.e.logError("re-authentication required", r.key, x)
	} else {
		r.e.logError("refresh failed; not retrying with this refresh token", r.key, x)
	}
	return nil, x
}

// fail logs a failure of the flight; its event will carry it.
func (r *run) fail(err error) {
	r.e.logError("refresh failed", r.key, err)
}
