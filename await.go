package refresh

import (
	"context"
	"errors"
	"time"

	"golang.org/x/oauth2"
)

// current returns the entry of key and a snapshot to send now: the current
// one if it is usable; if it is due but still valid, the same while a
// refresh replaces it in the background (nobody waits for an early
// refresh); else one acquired, which may wait for a refresh.
func (e *Engine) current(ctx context.Context, key string) (*entry, *snapshot, error) {
	if e.closed.Load() {
		return nil, nil, &Error{Key: key, Err: ErrClosed}
	}
	ent := e.entry(key)
	ent.idle.Store(false)
	s := ent.cur.Load()
	switch {
	case s.usable():
	case s.valid(time.Now()):
		e.renewEarly(ctx, key, ent, s)
	case e.fetcher != nil && fetching(ctx, e, key):
		return nil, nil, &Error{Key: key, Err: errGrantCycle} // waiting would deadlock
	default:
		var err error
		if s, err = e.acquire(ctx, key, ent, s); err != nil {
			return nil, nil, err
		}
	}
	return ent, s, nil
}

// renewEarly starts a refresh of s, the key's token, which is due but
// valid, on a goroutine of its own, unless one was started already. The
// callers keep sending s meanwhile; only those whose token expires or is
// rejected join the refresh and wait.
func (e *Engine) renewEarly(ctx context.Context, key string, ent *entry, s *snapshot) {
	if !s.due.CompareAndSwap(due, renewed) {
		return
	}
	ctx = context.WithoutCancel(ctx)
	e.flights.start(key, func(callers func() []context.Context) (*snapshot, error) {
		return e.flight(ctx, key, ent, s, TriggerDue, callers)
	})
}

// acquire returns a usable snapshot for a key whose current one, s, cannot
// be sent: missing, expired, latched, unsendable or closed.
func (e *Engine) acquire(ctx context.Context, key string, ent *entry, s *snapshot) (*snapshot, error) {
	trigger := TriggerMissing
	if s != nil {
		switch s.state {
		case closed:
			return nil, s.err(key)
		case latched:
			if s.holds() {
				return nil, s.err(key)
			}
			trigger = TriggerRecheck
		case unsendable, unusable:
			// An unsendable token is refreshed unless there is nothing
			// to refresh it with; one that came from a refresh waits
			// for its refresh time (see refreshedSnapshot).
			if s.tok.RefreshToken == "" && e.fetcher == nil || s.state == unusable && (s.refreshAt.Load() == 0 || mono() < s.refreshAt.Load()) {
				return nil, s.err(key)
			}
			trigger = TriggerExpired
		case sendable:
			trigger = TriggerDue
			if !s.valid(time.Now()) {
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
	ent.mu.Lock()
	if ent.gone {
		ent.mu.Unlock()
		return s, nil // nothing newer than s here; the next request looks again
	}
	ev := e.startEvent(EventAdopt, key, TriggerRejected, s)
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
	if ent.pending() != nil {
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
	ns, c := e.adoptStored(key, ent, stored, "adopted stored token")
	ent.seen, ent.seenOK = c, true
	if ns != nil {
		ev.Outcome = OutcomeAdoptedStore
		ev.setNew(ns)
		return ns, nil
	}
	return s, nil
}

// adoptStored publishes stored, just read from the store, as the key's token
// if it can be used now, and returns it; else it returns nil (the caller
// refreshes with its refresh token). Either way it returns the engine's
// copy of stored, the one to keep as the token seen in the store. Called
// with ent.mu held.
func (e *Engine) adoptStored(key string, ent *entry, stored *oauth2.Token, msg string) (*snapshot, *oauth2.Token) {
	ns := e.newSnapshot(key, copyToken(stored))
	if !ns.fresh() {
		return nil, ns.tok
	}
	e.publish(ent, ns)
	e.logInfo(msg, key, ns.tok)
	return ns, ns.tok
}

// await joins the key's refresh flight, or starts one, to replace s. The
// flight runs detached from ctx; if ctx ends first, await returns ctx.Err()
// and the flight goes on for the others. A trigger other than
// TriggerRejected means s, if set, was not refused by the API (see flight).
func (e *Engine) await(ctx context.Context, key string, ent *entry, s *snapshot, trigger Trigger) (*snapshot, error) {
	again := true
	for gone := 0; ; {
		fent := ent // the flight's, read on its goroutine
		got, err := e.flights.do(ctx, key, func(callers func() []context.Context) (*snapshot, error) {
			return e.flight(ctx, key, fent, s, trigger, callers)
		})
		switch {
		case err == errGone && gone < maxGone:
			// The key was forgotten meanwhile: look it up again.
			gone++
			ent = e.entry(key)
			continue
		case err == errGone:
			return nil, &Error{Key: key, Err: errors.New("the key keeps being removed"), temporary: true}
		case err != nil:
			return nil, err
		}
		// A flight started for an older token may publish the very token
		// this caller found rejected, and an early flight that another
		// process's lock deferred returns s itself, which may have expired
		// meanwhile: then one more flight is needed.
		if got == s && s != nil && again && (trigger == TriggerRejected || !s.valid(time.Now())) {
			again = false
			continue
		}
		return got, nil
	}
}

// errGone is the error of a flight for an entry that was removed (Forget,
// Logout, a key without a token): its callers look the key up again.
var errGone = errors.New("refresh: entry removed")

// maxGone bounds how often await looks a key up again.
const maxGone = 3
