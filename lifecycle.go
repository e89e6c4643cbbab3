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
// After Close, whatever needs the store or the token endpoint fails with an
// error wrapping [ErrClosed]; requests whose token is valid and cached still
// go out with it. Close may be called more than once.
func (e *Engine) Close(ctx context.Context) error {
	if e.closed.CompareAndSwap(false, true) {
		close(e.done)
	}
	var errs []error
	e.eachEntry(func(key string, ent *entry) {
		ent.mu.Lock()
		if ent.pending != nil {
			sctx, cancel := context.WithTimeout(e.storeContext(ctx, key), e.timeout)
			e.savePending(sctx, key, ent)
			cancel()
		}
		if p := ent.pending; p != nil {
			errs = append(errs, &Error{Key: key, Err: ErrNotSaved})
			e.logError("closing without saving the newest token", key, nil)
		}
		ent.releaseHeld()
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

// maxCloseEventWait bounds how long Close waits for OnEvent.
const maxCloseEventWait = 5 * time.Second

// eachEntry calls f for every key the engine has seen.
func (e *Engine) eachEntry(f func(key string, ent *entry)) {
	f(DefaultKey, e.def)
	e.keys.Range(func(k, v any) bool {
		f(k.(string), v.(*entry))
		return true
	})
}
