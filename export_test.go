package refresh

import (
	"time"

	"golang.org/x/oauth2"
)

// Test helpers of this package that the external tests (package
// refresh_test) use too.
type (
	LockingStore = lockingStore
	SyncBuffer   = syncBuffer
	StubRT       = stubRT
)

// Response is response, for the external tests.
var Response = response

// WaitFor is waitFor, for the external tests.
var WaitFor = waitFor

// FlushEvents waits until OnEvent and the hooks got every event emitted so
// far: they run on the engine's event goroutine.
func FlushEvents(e *Engine) { e.flushEvents(nil) }

// FlightCallers returns how many callers wait for key's refresh flight.
func FlightCallers(e *Engine, key string) int {
	e.flights.mu.Lock()
	defer e.flights.mu.Unlock()
	if c := e.flights.m[key]; c != nil {
		return len(c.callers)
	}
	return 0
}

// The tests' only views into the engine's internals, so that a change of
// them costs one place. Prefer the public API: Token, Refresh and a store of
// the test's own.

// servedToken returns the token the engine would put on key's next request
// now, without loading, refreshing or waiting; nil if it has none.
func servedToken(e *Engine, key string) *oauth2.Token {
	if s := e.entry(normalizeKey(key)).cur.Load(); s != nil && s.tok != nil {
		return s.tok
	}
	return nil
}

// refreshAtOf returns when the engine would refresh tok, stored for key,
// before any 401, without the jitter (up to half the skew earlier): the
// zero time for never.
func refreshAtOf(e *Engine, key string, tok *oauth2.Token) time.Time {
	return e.refreshTime(tok)
}
