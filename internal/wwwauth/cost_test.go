package wwwauth

import (
	"math"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// hostileShape is a header built to make one part of the parser work hard.
type hostileShape struct {
	name   string
	values []string
}

// hostile returns header shapes of about n bytes, each aimed at one part of
// the parser: quoted-pair escapes, auth-param maps, the challenge list,
// unterminated quoted-strings, list separators, many header lines.
func hostile(n int) []hostileShape {
	rep := func(s string) string { return strings.Repeat(s, n/len(s)) }
	var params, quoted strings.Builder
	params.WriteString("Bearer ")
	quoted.WriteString("Bearer ")
	for i := 0; params.Len() < n; i++ {
		params.WriteString("p" + strconv.Itoa(i) + "=x, ")
	}
	for i := 0; quoted.Len() < n; i++ {
		quoted.WriteString("p" + strconv.Itoa(i) + `="\"v\\", `)
	}
	var full strings.Builder // a few challenges of many params
	for i := 0; full.Len() < n; i++ {
		if i%64 == 0 {
			full.WriteString("B ")
		}
		full.WriteString(strconv.Itoa(i%64) + "=x,")
	}
	lines := make([]string, n/16)
	for i := range lines {
		lines[i] = "Bearer a=b, c=d"
	}
	return []hostileShape{
		{"backslash in every value", []string{"Bearer " + rep(`a="\x",`)}},
		{"backslash in every orphan value", []string{rep(`a="\x",`)}},
		{"backslash in every malformed element", []string{rep(`@"\x",`)}},
		{"one long escaped value", []string{`Bearer error_description="` + rep(`\\`) + `"`}},
		{"many distinct params", []string{params.String()}},
		{"many distinct escaped params", []string{quoted.String()}},
		{"a few challenges of many params", []string{full.String()}},
		{"many challenges", []string{rep(`Bearer error="invalid_token", `)}},
		{"many short challenges", []string{rep("a b=c,")}},
		{"many token68 challenges", []string{rep("N abc==,")}},
		{"unterminated escaped quote", []string{`Bearer x="` + rep(`\"`)}},
		{"unterminated quotes", []string{rep(`a="`)}},
		{"many commas", []string{rep(",")}},
		{"many equals", []string{"Bearer " + rep("=")}},
		{"one long token", []string{rep("a")}},
		{"many header lines", lines},
		{"many empty header lines", make([]string, n)},
	}
}

// allocated returns how many allocations f makes, and how many bytes, in
// one call. The counts are the process's, so another goroutine (the
// runtime's, the testing package's) may add to them: the least of a few
// calls is taken. A few are enough: the bounds checked are far below what
// the unbounded parser allocated (gigabytes for a 1 MB header).
func allocated(f func()) (allocs, bytes uint64) {
	runtime.GC()
	allocs, bytes = math.MaxUint64, math.MaxUint64
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		allocs = min(allocs, after.Mallocs-before.Mallocs)
		bytes = min(bytes, after.TotalAlloc-before.TotalAlloc)
	}
	return allocs, bytes
}

// TestCostIsBounded: however long and however hostile the header, one call
// allocates no more than parsing the capped prefix needs.
func TestCostIsBounded(t *testing.T) {
	const (
		// Parse keeps at most maxChallenges challenges and maxParams
		// params from at most maxBytes of header. Measured worst case:
		// 27 KiB in 135 allocations, for 64 challenges of one param
		// each (a map each). The old parser took gigabytes.
		parseAllocs = 500
		parseBytes  = 64 << 10
		// ErrorCode builds nothing but the code it returns.
		codeAllocs = 4
		codeBytes  = 2 * maxBytes
	)
	for _, sh := range hostile(1 << 20) {
		allocs, bytes := allocated(func() { Parse(sh.values) })
		if allocs > parseAllocs || bytes > parseBytes {
			t.Errorf("%s: Parse made %d allocations of %d bytes in all, want at most %d and %d",
				sh.name, allocs, bytes, parseAllocs, parseBytes)
		}
		allocs, bytes = allocated(func() { ErrorCode(sh.values) })
		if allocs > codeAllocs || bytes > codeBytes {
			t.Errorf("%s: ErrorCode made %d allocations of %d bytes in all, want at most %d and %d",
				sh.name, allocs, bytes, codeAllocs, codeBytes)
		}
	}
}
