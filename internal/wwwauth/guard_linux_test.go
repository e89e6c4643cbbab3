package wwwauth

import (
	"fmt"
	"runtime/debug"
	"syscall"
	"testing"
	"unsafe"
)

// guarded returns a string of prefix followed by rest bytes that cannot be
// read: they lie on pages mapped without access, so reading one faults. The
// string stays valid until the returned release is called.
func guarded(t *testing.T, prefix string, rest int) (s string, release func()) {
	t.Helper()
	page := syscall.Getpagesize()
	head := (len(prefix) + page - 1) / page * page
	tail := (rest + page - 1) / page * page
	mem, err := syscall.Mmap(-1, 0, head+tail, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap: %v", err)
	}
	start := head - len(prefix) // so that the prefix ends where the guard begins
	copy(mem[start:], prefix)
	if err := syscall.Mprotect(mem[head:], syscall.PROT_NONE); err != nil {
		t.Fatalf("mprotect: %v", err)
	}
	s = unsafe.String(&mem[start], len(prefix)+rest)
	return s, func() { syscall.Munmap(mem) }
}

// readsPastCap reports the fault, if f reads memory it cannot.
func readsPastCap(f func()) (fault error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			fault = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// TestReadsNothingPastTheCap: Parse and ErrorCode never look at a byte past
// the first maxBytes of a header, however the header goes on. The bytes past
// the cap are unreadable memory, so a parser that goes on faults.
func TestReadsNothingPastTheCap(t *testing.T) {
	const rest = 1 << 20
	for _, sh := range hostile(2 * maxBytes) {
		if len(sh.values) != 1 {
			continue
		}
		v := sh.values[0][:maxBytes]
		for _, split := range []int{0, 100, maxBytes - 1} {
			// All values together share the cap; each value but the
			// last costs one byte more, for its line break.
			values := []string{v[:split], ""}
			s, release := guarded(t, v[split+1:], rest)
			values[1] = s
			if err := readsPastCap(func() { Parse(values) }); err != nil {
				t.Errorf("%s, split at %d: Parse read past the cap: %v", sh.name, split, err)
			}
			if err := readsPastCap(func() { ErrorCode(values) }); err != nil {
				t.Errorf("%s, split at %d: ErrorCode read past the cap: %v", sh.name, split, err)
			}
			release()
		}
	}
}
