package redact

import (
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestOccurrences compares the search that skips by the period with one
// that tries every position, on every text and pattern of a and b up to a
// length.
func TestOccurrences(t *testing.T) {
	words := func(n int) []string {
		var out []string
		for l := 1; l <= n; l++ {
			for bits := 0; bits < 1<<l; bits++ {
				var b strings.Builder
				for i := range l {
					b.WriteByte("ab"[bits>>i&1])
				}
				out = append(out, b.String())
			}
		}
		return out
	}
	texts := words(11)
	for _, p := range words(6) {
		f := form{text: p, period: period(p)}
		for _, text := range texts {
			var want []int
			for i := 0; i+len(p) <= len(text); i++ {
				if text[i:i+len(p)] == p {
					want = append(want, i)
				}
			}
			if got := slices.Collect(f.occurrences(text)); !slices.Equal(got, want) {
				t.Fatalf("occurrences of %q (period %d) in %q = %v, want %v", p, f.period, text, got, want)
			}
		}
	}
}

// TestMemoryIsLinear: however the input is made, String allocates a
// bounded number of bytes for each byte of it (four views of 5 bytes, marks
// of 4, the result).
func TestMemoryIsLinear(t *testing.T) {
	const n = 1 << 20
	rep := func(s string) string { return strings.Repeat(s, n/len(s)) }
	secrets := New("aaaa", strings.Repeat("a", 1000), "abcd", sec).WithFingerprints()
	for _, in := range []string{
		rep(`\\`),
		rep(`\u0061`),
		rep(`%61`),
		rep(`\\%61\u0061\/`),
		rep("a"),
		rep("abcd "),
		rep(sec + `\u0020`),
		rep("YWFhYW"),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		secrets.String(in)
		runtime.ReadMemStats(&after)
		// A collection, or another goroutine's allocations, only add: the
		// bound has room for them.
		if got, most := after.TotalAlloc-before.TotalAlloc, uint64(40*len(in)); got > most {
			t.Errorf("String(%.20q…) allocated %d bytes, %.1f per input byte; want at most %d", in, got, float64(got)/float64(len(in)), most)
		}
	}
}
