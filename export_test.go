package refresh

// Test helpers of this package that the external tests (package
// refresh_test) use too.
type (
	LockingStore = lockingStore
	SyncBuffer   = syncBuffer
)

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
