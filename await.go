package refresh

import (
	"context"
	"time"

	"golang.org/x/oauth2"
)

// acquire returns a usable snapshot for a key whose current one, s, is not:
// missing, due, latched or unsendable.
func (e *Engine) acquire(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	trigger := TriggerMissing
	if s != nil {
		now := time.Now()
		switch s.state {
		case latched:
			if s.holds(now) {
				return nil, s.err
			}
			trigger = TriggerRecheck
		case unsendable, unusable:
			// An unsendable token is refreshed unless there is nothing
			// to refresh it with; one that came from a refresh waits
			// for its refresh time (see refreshedSnapshot).
			if s.tok.RefreshToken == "" || s.state == unusable && (s.refreshAt.IsZero() || now.Before(s.refreshAt)) {
				return nil, s.err
			}
			trigger = TriggerExpired
		case sendable:
			trigger = TriggerDue
			if !now.Before(s.tok.Expiry) {
				trigger = TriggerExpired
			}
		}
	}
	return e.await(ctx, key, ent, s, trigger)
}

// adopt returns a token newer than s, from memory or from the store, for a
// request whose retry with s was rejected too. It never calls the token
// endpoint; without a newer token it returns s.
func (e *Engine) adopt(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	if cur := ent.replaced(s); cur != nil {
		return cur, nil
	}
	return e.adopts.do(ctx, key, func(callers func() []context.Context) (*snapshot, error) {
		return e.adoptFlight(ctx, key, ent, s, callers)
	})
}

// adoptFlight is step 4 of the protocol alone: under the key's locks,
// re-read the store and publish a newer usable token if it holds one.
func (e *Engine) adoptFlight(callerCtx context.Context, key string, ent *entry, s *snapshot, callers func() []context.Context) (*snapshot, error) {
	ev := e.startEvent(EventAdopt, key, TriggerRejected, s)
	ent.mu.Lock()
	defer func() {
		ent.mu.Unlock()
		ev.Callers = callers()
		e.emit(ev)
	}()
	if cur := ent.cur.Load(); cur != s {
		ev.Outcome = OutcomeAdoptedMemory
		if cur.usable() {
			ev.setNew(cur)
			return cur, nil
		}
		return s, nil
	}
	ev.Outcome = OutcomeUnchanged
	if ent.pending != nil {
		return s, nil // the store is behind memory
	}
	ctx, cancel := context.WithTimeout(e.storeContext(callerCtx, key), e.timeout)
	defer cancel()
	if l, ok := e.store.(Locker); ok {
		unlock, err := ev.timeLock(func() (func(), error) { return storeLock(ctx, l, key) })
		if err != nil {
			return s, nil
		}
		defer unlock()
	}
	stored, err := ev.timeLoad(func() (*oauth2.Token, error) { return e.storeLoad(ctx, key) })
	if err != nil || stored == nil || SameToken(stored, s.tok) {
		return s, nil
	}
	ent.seen, ent.seenOK = copyToken(stored), true
	if ns := e.adoptStored(key, ent, stored, "adopted stored token"); ns != nil {
		ev.Outcome = OutcomeAdoptedStore
		ev.setNew(ns)
		return ns, nil
	}
	return s, nil
}

// adoptStored publishes stored, just read from the store, as the key's token
// if it can be used now, and returns it; else it returns nil (the caller
// refreshes with its refresh token). Called with ent.mu held.
func (e *Engine) adoptStored(key string, ent *entry, stored *oauth2.Token, msg string) *snapshot {
	ns := e.newSnapshot(key, copyToken(stored))
	if !ns.fresh() {
		return nil
	}
	ent.publish(ns)
	e.logInfo(msg, key, ns.tok)
	return ns
}

// await joins the key's refresh flight, or starts one, to replace s. The
// flight runs detached from ctx; if ctx ends first, await returns ctx.Err()
// and the flight goes on for the others. A trigger other than
// TriggerRejected means s, if set, was not refused by the API (see flight).
func (e *Engine) await(ctx context.Context, key string, ent *entry, s *snapshot, trigger Trigger) (*snapshot, error) {
	for attempt := 0; ; attempt++ {
		got, err := e.flights.do(ctx, key, func(callers func() []context.Context) (*snapshot, error) {
			return e.flight(ctx, key, ent, s, trigger, callers)
		})
		if err != nil {
			return nil, err
		}
		// A flight started for an older token may publish the very
		// token this caller found rejected; then one more is needed.
		// (An early flight returns s itself when it keeps using it.)
		if got == s && s != nil && trigger == TriggerRejected && attempt == 0 {
			continue
		}
		return got, nil
	}
}
