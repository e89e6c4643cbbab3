package refresh

import "errors"

// Hooks are called when something happens to a key's token: a thin layer
// over [Config.OnEvent] for programs that need only these. Every field is
// optional. Hooks are called like OnEvent (after it, on the engine's event
// goroutine, in order, shortly after the fact), so they may run after the
// call that caused them has returned. They may call the engine. They are
// never given a token value. A hook that panics is recovered and logged; the
// others still run.
type Hooks struct {
	// Refreshed is called after a new token was obtained and saved (or its
	// save failed; SaveFailed tells).
	Refreshed func(key string)
	// RefreshFailed is called when a refresh failed for any reason,
	// including those that need re-authentication; not again for a key
	// still awaiting re-authentication or cooling down (Event.Repeated).
	RefreshFailed func(key string, err error)
	// ReauthRequired is called when the key needs a new login: its refresh
	// token was rejected or there is none.
	ReauthRequired func(key string, err error)
	// SaveFailed is called when the store could not save a new token. The
	// engine keeps using the token from memory and tries to save it again,
	// in the background and at every refresh, until it succeeds or the
	// engine is closed. Meanwhile it keeps the key's cross-process lock (if
	// the store has one), so that no other process spends the store's older
	// refresh token: they wait, and fail temporarily after their refresh
	// timeout.
	SaveFailed func(key string, err error)
}

// withHooks returns the function the dispatcher calls for each event:
// onEvent, then the hooks that apply. It is nil when neither is set, and no
// event is built.
func (e *Engine) withHooks(onEvent func(Event), h Hooks) func(Event) {
	if h.Refreshed == nil && h.RefreshFailed == nil && h.ReauthRequired == nil && h.SaveFailed == nil {
		return onEvent
	}
	return func(ev Event) {
		if onEvent != nil {
			e.guarded(ev.Key, "OnEvent", func() { onEvent(ev) })
		}
		for _, f := range h.calls(ev) {
			e.guarded(ev.Key, "a hook", f)
		}
	}
}

// calls returns the calls of the hooks that ev is for.
func (h Hooks) calls(ev Event) []func() {
	var fs []func()
	add := func(ok bool, f func()) {
		if ok {
			fs = append(fs, f)
		}
	}
	switch ev.Kind {
	case EventSaveFailed:
		add(h.SaveFailed != nil, func() { h.SaveFailed(ev.Key, ev.Err) })
	case EventRefresh:
		add(h.Refreshed != nil && ev.Outcome == OutcomeRefreshed, func() { h.Refreshed(ev.Key) })
		failed := ev.Err != nil && !ev.Repeated
		add(h.RefreshFailed != nil && failed, func() { h.RefreshFailed(ev.Key, ev.Err) })
		add(h.ReauthRequired != nil && failed && errors.Is(ev.Err, ErrReauthRequired), func() { h.ReauthRequired(ev.Key, ev.Err) })
	}
	return fs
}

// guarded calls f, the user's; a panic is logged without its value.
func (e *Engine) guarded(key, what string, f func()) {
	defer func() {
		if recover() != nil {
			e.logError(what+" panicked", key, nil)
		}
	}()
	f()
}
