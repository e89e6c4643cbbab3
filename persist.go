package refresh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// maxTried bounds entry.tried: the tokens of one outage of the store.
const maxTried = 64

// setPending records s as the key's newest token, not yet in the store.
// Called with ent.mu held.
func (e *Engine) setPending(ent *entry, s *snapshot) {
	x := ent.trouble()
	if x.pending == nil {
		e.stats.pending.Add(1)
	}
	x.pending = s
	if len(x.tried) == maxTried {
		x.tried = append(x.tried[:0], x.tried[1:]...)
	}
	x.tried = append(x.tried, s.tok)
}

// saved records that tok is in the store: nothing is pending any more, and
// a cross-process lock kept for the pending token is released. tok is
// shared, not copied: tokens are never modified once the engine has them.
// Called with ent.mu held.
func (e *Engine) saved(ent *entry, tok *oauth2.Token) {
	ent.seen, ent.seenOK = tok, true
	e.dropPending(ent)
	ent.releaseHeld()
}

// dropPending forgets the pending token: it was saved, or the store holds
// a newer one. Called with ent.mu held.
func (e *Engine) dropPending(ent *entry) {
	x := ent.x.Load()
	if x == nil {
		return
	}
	if x.pending != nil {
		e.stats.pending.Add(-1)
	}
	x.pending, x.tried = nil, nil
}

// releaseHeld releases the cross-process lock kept since a save failed.
// Called with ent.mu held.
func (ent *entry) releaseHeld() {
	if x := ent.x.Load(); x != nil && x.held != nil {
		h := x.held
		x.held = nil
		h()
	}
}

// keepOrRelease keeps unlock, the key's cross-process lock, while a token
// of the key is not saved (see trouble.held): no other process may spend
// the store's older refresh token meanwhile. Otherwise it releases it. A
// nil unlock (no lock was taken) does nothing. Called with ent.mu held.
func (ent *entry) keepOrRelease(unlock func()) {
	switch {
	case unlock == nil:
	case ent.pending() != nil:
		ent.trouble().held = unlock
	default:
		unlock()
	}
}

// ours reports whether t, read from the store, is a token this engine knows
// is not newer than its own: the one it last saw there, or one it tried to
// save since (a save that reported failure may have committed). Called with
// ent.mu held.
func (ent *entry) ours(t *oauth2.Token) bool {
	if ent.seenOK && SameToken(t, ent.seen) {
		return true
	}
	x := ent.x.Load()
	if x == nil {
		return false
	}
	for _, o := range x.tried {
		if SameToken(t, o) {
			return true
		}
	}
	return false
}

// secrets returns the values of every token of the key this entry knows,
// and of extra, to be redacted from the errors of user code: access and
// refresh tokens, and extras such as id_token (see tokenSecrets). Called with
// ent.mu held.
func (ent *entry) secrets(extra ...*oauth2.Token) []string {
	var s []string
	add := func(t *oauth2.Token) {
		if t != nil {
			s = append(s, tokenSecrets(t)...)
		}
	}
	for _, t := range extra {
		add(t)
	}
	add(ent.seen)
	if c := ent.cur.Load(); c != nil {
		add(c.tok)
	}
	if x := ent.x.Load(); x != nil {
		for _, t := range x.tried {
			add(t)
		}
	}
	return s
}

// save stores tok for key: with compare-and-swap against the token last seen
// in the store when the store can, else with Save. A swap refused because the
// store holds a token of ours (see entry.ours) is tried again against that
// token, a few times; one refused because it holds someone else's returns an
// error wrapping ErrConflict, with ent.seen set to that token. Called with
// ent.mu held.
func (e *Engine) save(ctx context.Context, key string, ent *entry, tok *oauth2.Token) error {
	cas, ok := e.store.(CompareAndSwapper)
	if !ok || !ent.seenOK {
		err := e.storeSave(ctx, key, tok)
		if err == nil {
			e.saved(ent, tok)
		}
		return err
	}
	for range 3 {
		err := storeCAS(ctx, cas, key, ent.seen, tok)
		if err == nil {
			e.saved(ent, tok)
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		stored, lerr := e.storeLoad(ctx, key)
		switch {
		case lerr == nil && stored != nil && SameToken(stored, tok):
			e.saved(ent, tok) // an earlier attempt committed after all
			return nil
		case errors.Is(lerr, ErrNotFound):
			ent.seen = nil
			return err
		case lerr != nil:
			// Whose token the store holds is unknown: keep ours, and
			// try again later.
			return fmt.Errorf("store load after a refused compare-and-swap: %w", cleanErr(lerr, ent.secrets(tok, stored)...))
		case stored == nil:
			return errors.New("store load after a refused compare-and-swap: store returned no token and no error")
		case !ent.ours(stored):
			ent.seen = copyToken(stored)
			return err
		}
		ent.seen = copyToken(stored) // ours, older: swap against it
	}
	return errors.New("the stored token keeps changing")
}

// savePending tries again to save the token whose save failed. Called with
// ent.mu held. If the store meanwhile got a newer token from elsewhere, the
// pending one is dropped (it stays in use until the next flight adopts the
// stored one).
func (e *Engine) savePending(ctx context.Context, key string, ent *entry) {
	p := ent.pending()
	err := e.save(ctx, key, ent, p.tok)
	switch {
	case err == nil:
		e.logInfo("saved token after earlier failure", key, p.tok)
	case errors.Is(err, ErrConflict):
		e.dropPending(ent)
		ent.releaseHeld()
	default:
		e.saveFailed(key, ent, p.tok, err)
	}
}

// saveFailed reports a failed save of key's new token.
func (e *Engine) saveFailed(key string, ent *entry, tok *oauth2.Token, cause error) {
	err := &Error{Key: key, Err: fmt.Errorf("store save: %w", cleanErr(cause, ent.secrets(tok)...))}
	e.logWarn("saving the new token failed; using it from memory and retrying", key, nil, err)
	e.emit(&Event{Kind: EventSaveFailed, Key: key, Start: time.Now(), Err: err, NewToken: Fingerprint(tok.AccessToken)})
}

// retryLater starts the background saves of s, the key's pending token.
func (e *Engine) retryLater(key string, ent *entry, s *snapshot) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.retrySave(key, ent, s)
	}()
}

// retrySave keeps trying to save s while it is the pending token of the
// key, with exponential backoff, until it is saved, replaced or dropped, or
// the engine is closed. There is no bound on the attempts: until s is in the
// store, the key's cross-process lock is held and other processes wait, and
// s lives only in this process's memory.
func (e *Engine) retrySave(key string, ent *entry, s *snapshot) {
	delay := saveBackoff
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-e.done:
			return
		}
		ent.mu.Lock()
		if ent.pending() == s {
			ctx, cancel := context.WithTimeout(e.storeContext(context.Background(), key), e.timeout)
			e.savePending(ctx, key, ent)
			cancel()
		}
		done := ent.pending() != s
		if done {
			ent.tidy()
		}
		ent.mu.Unlock()
		if done {
			return
		}
		delay = min(2*delay, saveMaxDelay)
		t.Reset(delay)
	}
}
