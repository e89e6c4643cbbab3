package refresh

// Test helpers of this package that the external tests (package
// refresh_test) use too.
type (
	LockingStore = lockingStore
	SyncBuffer   = syncBuffer
)
