package refresh

import (
	"sync/atomic"
	"time"
	"weak"
)

// The idle sweep (Config.IdleTimeout) runs every half IdleTimeout. A key's
// idle flag is set by one sweep and cleared by every use (the hot path
// writes it only when set); a key still idle at the next sweep is evicted.
// The sweep's timer holds the engine only weakly: an engine dropped without
// Close is collected, and its sweep ends.

// startSweep arms the first sweep.
func (e *Engine) startSweep() {
	every := max(e.idle/2, time.Millisecond)
	w := weak.Make(e)
	var timer atomic.Pointer[time.Timer]
	t := time.AfterFunc(time.Hour, func() {
		if e := w.Value(); e != nil && !e.closed.Load() {
			e.sweep()
			timer.Load().Reset(every)
		}
	})
	timer.Store(t)
	t.Reset(every) // only now: the func reads timer
	e.sweeper = t
}

// sweep evicts the keys idle since the last sweep, and marks the others.
func (e *Engine) sweep() {
	e.keys.each(func(ent *entry) {
		if !ent.idle.Swap(true) {
			return
		}
		e.evict(ent)
	})
}

// evict drops ent if nothing of it would be lost: no save pending, no
// refresh running (the sweep never waits for one), no token that only
// memory holds.
func (e *Engine) evict(ent *entry) {
	if !ent.mu.TryLock() {
		return
	}
	defer ent.mu.Unlock()
	if ent.pending() != nil || e.own && ent.stored.Load() != nil {
		return
	}
	e.drop(ent)
}
