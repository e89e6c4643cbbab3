package refresh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"
)

func (e *Engine) saveFailed(key string, cause error, after *[]func()) {
	err := &Error{Key: key, Err: fmt.Errorf("store save: %w", cause)}
	if e.log != nil {
		e.log.Warn("refresh: saving the new token failed; using it from memory and retrying",
			slog.String("key", key), slog.String("error", err.Error()))
	}
	if h := e.hooks.SaveFailed; h != nil {
		*after = append(*after, func() { h(key, err) })
	}
}

// save stores tok for key: with compare-and-swap against the token last
// seen in the store when the store can, else with Save. Called with ent.mu
// held.
func (e *Engine) save(ctx context.Context, key string, ent *entry, tok *oauth2.Token) error {
	var err error
	if cas, ok := e.store.(CompareAndSwapper); ok && ent.seenOK {
		err = cas.CompareAndSwap(ctx, key, ent.seen, tok)
	} else {
		err = e.store.Save(ctx, key, tok)
	}
	if err == nil {
		ent.seen, ent.seenOK = copyToken(tok), true
	}
	return err
}

// adoptAfterConflict publishes the token a compare-and-swap lost to.
func (e *Engine) adoptAfterConflict(ctx context.Context, key string, ent *entry, after *[]func()) (*snapshot, error) {
	ent.pending = nil
	stored, err := e.store.Load(ctx, key)
	if err != nil || stored == nil {
		x := &Error{Key: key, Err: fmt.Errorf("store load after a conflicting save: %w", err), temporary: true}
		ent.seenOK = false
		e.failed(key, x, after)
		return nil, x
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	ns := unsendable(e.newSnapshot(key, copyToken(stored)))
	ent.publish(ns)
	if e.log != nil {
		e.log.Warn("refresh: a newer token was saved during this refresh; adopting it and dropping ours",
			slog.String("key", key), slog.String("access_token", Fingerprint(stored.AccessToken)))
	}
	if ns.auth == nil {
		return nil, ns.bad
	}
	return ns, nil
}

// savePending tries again to save the token whose save failed. Called with
// ent.mu held. If the store meanwhile got a newer token from elsewhere,
// the pending one is dropped and the next refresh adopts the stored one.
func (e *Engine) savePending(ctx context.Context, key string, ent *entry, after *[]func()) {
	err := e.save(ctx, key, ent, ent.pending.tok)
	switch {
	case errors.Is(err, ErrConflict):
		ent.pending, ent.seenOK = nil, false
	case err != nil:
		e.saveFailed(key, err, after)
	default:
		e.logInfo("saved token after earlier failure", key, ent.pending.tok)
		ent.pending = nil
	}
}

// retrySave keeps trying to save s while it is the pending token of the key,
// with exponential backoff, a bounded number of times.
func (e *Engine) retrySave(key string, ent *entry, s *snapshot) {
	delay := saveBackoff
	for range saveRetries {
		time.Sleep(delay)
		delay = min(2*delay, saveMaxDelay)
		var after []func()
		ent.mu.Lock()
		if ent.pending == s {
			ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
			e.savePending(ctx, key, ent, &after)
			cancel()
		}
		done := ent.pending != s
		ent.mu.Unlock()
		for _, f := range after {
			f()
		}
		if done {
			return
		}
	}
}
