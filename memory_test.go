package refresh_test

import "testing"

// TestMemoryPerKey pins a generous bound on the heap a key costs (the
// target is 450 bytes at a million keys; BenchmarkMemoryPerKey reports it
// at 10 k, 100 k and 1 M): memory is a count, not a timing. One immutable
// copy of each token, no per-key timer, no sync.Map node.
func TestMemoryPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 keys")
	}
	const keys, bound = 100_000, 480
	if got := bytesPerKey(keys, engineOf); got > bound {
		t.Errorf("heap per key at %d keys = %.0f B, want at most %d", keys, got, bound)
	} else {
		t.Logf("heap per key at %d keys = %.0f B", keys, got)
	}
}
