package refresh

import (
	"context"
	"errors"
	"time"
)

// Close stops the engine's background work. It first tries once more,
// within ctx, to save each token whose save failed, and releases the
// cross-process locks kept for them. It returns nil if every token is in the
// store; else an error that joins one *Error per such key, each wrapping
// [ErrNotSaved]: that key's newest token exists only in this process's
// memory and is lost when it exits (the user of that key will have to log in
// again), and the store's older token for it has been spent.
//
// Close also waits, within ctx and for at most 5 seconds, until
// [Config.OnEvent] got every event emitted before it.
//
// After Close every call fails with an error wrapping [ErrClosed]: requests
// through a [Transport], [Engine.Token], [Engine.Refresh], [Engine.SetToken],
// [Engine.Logout]. Nothing of the engine keeps running: no timer, no
// goroutine. Close may be called more than once.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.CompareAndSwap(false, true) {
		close(e.done)
	}
	e.sched.stop()
	if e.sweeper != nil {
		e.sweeper.Stop()
	}
	var errs []error
	e.eachEntry(func(ent *entry) {
		ent.mu.Lock()
		if ent.pending() != nil {
			sctx, cancel := context.WithTimeout(e.storeContext(ctx, ent.key), e.timeout)
			e.savePending(sctx, ent.key, ent)
			cancel()
		}
		if ent.pending() != nil {
			errs = append(errs, &Error{Key: ent.key, Err: ErrNotSaved})
			e.logError("closing without saving the newest token", ent.key, nil)
		}
		ent.releaseHeld()
		if !ent.gone && ent.cur.Load() != nil {
			e.publish(ent, closedSnapshot)
		}
		ent.mu.Unlock()
	})
	// Every flight that could start a background save has ended (each
	// entry's lock was taken above; later flights see closed), and the
	// saves see done.
	e.bg.Wait()
	// OnEvent gets what happened before Close, unless it is stuck.
	wait, cancel := context.WithTimeout(ctx, maxCloseEventWait)
	defer cancel()
	e.flushEvents(wait.Done())
	return errors.Join(errs...)
}

// closedSnapshot is the snapshot of every key of a closed engine.
var closedSnapshot = &snapshot{state: closed}

// maxCloseEventWait bounds how long Close waits for OnEvent.
const maxCloseEventWait = 5 * time.Second

// Forget drops what the engine holds in memory for key: its next use loads
// it from the store again. A key whose newest token is not saved yet is
// saved first, within ctx; if that fails the key is kept and the error
// wraps [ErrNotSaved]. With the engine's own store (Config.Store nil),
// memory is the store: Forget keeps a key that has a token (see
// [Engine.Logout]).
func (e *Engine) Forget(ctx context.Context, key string) error {
	key = normalizeKey(key)
	ent := e.lookup(key)
	if ent == nil {
		ent = e.keys.find(key)
	}
	if ent == nil {
		return nil
	}
	ent.mu.Lock()
	defer ent.mu.Unlock()
	if ent.gone {
		return nil
	}
	if ent.pending() != nil {
		sctx, cancel := context.WithTimeout(e.storeContext(ctx, key), e.timeout)
		e.savePending(sctx, key, ent)
		cancel()
		if ent.pending() != nil {
			return &Error{Key: key, Err: ErrNotSaved}
		}
	}
	if e.own && ent.stored.Load() != nil {
		return nil
	}
	e.drop(ent)
	return nil
}

// drop removes ent from the engine: it is gone, and the next use of its key
// gets a new entry, loaded from the store. Callers that hold ent notice
// under ent.mu (errGone). Called with ent.mu held, when nothing of ent
// remains to be saved.
func (e *Engine) drop(ent *entry) {
	if ent.gone {
		return
	}
	ent.gone = true
	ent.releaseHeld()
	e.dropPending(ent)
	if old := ent.cur.Load(); old != nil {
		e.sched.remove(old)
		e.stats.published(old, nil)
	}
	if ent.key == DefaultKey {
		e.def.CompareAndSwap(ent, &entry{key: DefaultKey})
		return
	}
	e.keys.remove(ent)
}

// eachEntry calls f for every key the engine holds.
func (e *Engine) eachEntry(f func(ent *entry)) {
	f(e.def.Load())
	e.keys.each(f)
}
