package refresh

import (
	"context"
	"errors"
	"net/http"
)

// The transport's side of the engine: two methods, ticket before a request
// and answer after each response.

// ticket returns the snapshot to send a request for key with: the current
// one when it is usable (the hot path: no lock, no clock, no allocation),
// else the one current returns.
func (e *Engine) ticket(ctx context.Context, key string) (*snapshot, error) {
	if ent := e.lookup(key); ent != nil {
		if s := ent.cur.Load(); s.usable() {
			if ent.idle.Load() {
				ent.idle.Store(false) // a write only once per idle sweep
			}
			return s, nil
		}
	}
	_, s, err := e.current(ctx, key)
	return s, err
}

// answer takes the API's response resp to a request for key sent with s,
// the round-th time (0: the first send). It returns the snapshot to send the
// request again with, or nil when resp stands: the API accepted s, or
// rejected it and there is nothing better to try (the rejection is handed
// back); or the error that ends the request. resend says whether the
// request can be sent again; if not, a rejection still refreshes the token
// for the next request.
func (e *Engine) answer(ctx context.Context, key string, s *snapshot, resp *http.Response, round int, resend bool) (*snapshot, error) {
	if !e.rejects(resp) {
		if s.mark.Load() != accepted {
			e.accepted(key, s)
		}
		return nil, nil
	}
	if round > 1 {
		return nil, nil // a third rejection is handed back as is
	}
	ns, via, err := e.reject(ctx, key, e.entry(key), s, round, resp)
	switch {
	case errors.Is(err, ErrRefreshPaused):
		return nil, nil
	case err != nil || ns == nil:
		return nil, err
	}
	if resend {
		ev := e.startEvent(EventResend, key, TriggerRejected, s)
		ev.Context, ev.StatusCode, ev.Outcome = ctx, resp.StatusCode, via
		ev.setNew(ns)
		e.emit(ev)
	}
	return ns, nil
}

// reject handles the API's rejection of s, in round 0 (the first send) or 1
// (the retry with the token round 0 gave). It returns the snapshot to retry
// with, or nil if there is none, and where it came from: the key's token
// that had replaced s (OutcomeAdoptedMemory), a refresh flight
// (OutcomeRefreshed) or the store (OutcomeAdoptedStore).
//
// The generation check comes first: a token that replaced s is used as it
// is. Round 0 then refreshes, unless refreshing the key is paused; round 1
// only adopts a newer token from the store, never calling the token
// endpoint a second time for one request. A token that a refresh had just
// returned, rejected before the API accepted it, pauses refreshing (see
// ErrRefreshPaused); a newer token in the store is still adopted meanwhile.
func (e *Engine) reject(ctx context.Context, key string, ent *entry, s *snapshot, round int, resp *http.Response) (*snapshot, Outcome, error) {
	if cur := ent.replaced(s); cur != nil {
		return cur, OutcomeAdoptedMemory, nil
	}
	struck := e.strike(ctx, key, ent, s, resp)
	if round == 0 && ent.paused() == 0 {
		ns, err := e.await(ctx, key, ent, s, TriggerRejected)
		return ns, OutcomeRefreshed, err
	}
	ns, err := e.adopt(ctx, key, ent, s)
	switch {
	case err != nil:
		return nil, OutcomeNone, err
	case ns != s:
		return ns, OutcomeAdoptedStore, nil
	case round == 1:
		return nil, OutcomeNone, nil
	}
	if !struck {
		e.emitPaused(ctx, key, s, resp, ent.paused())
	}
	return nil, OutcomeNone, &Error{Key: key, Err: ErrRefreshPaused}
}
