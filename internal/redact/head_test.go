package redact

import (
	"strings"
	"testing"
)

// TestHead: a long input is cut before any spelling of a secret that would
// straddle the cut, so that no part of it is kept; Field looks at no more.
func TestHead(t *testing.T) {
	s := New(sec)
	in := strings.Repeat("x", MaxFieldInput-5) + sec + strings.Repeat("y", 100)
	h := s.Head(in, MaxFieldInput)
	if len(h) >= MaxFieldInput || strings.Contains(h, sec[:5]) {
		t.Errorf("Head kept %d bytes, ending %q; want the secret's start dropped", len(h), h[len(h)-10:])
	}
	if got := s.Head("short", MaxFieldInput); got != "short" {
		t.Errorf("Head(short) = %q", got)
	}
	// Control characters are removed after the cut: what is left of the
	// input is the secret's start, unless the cut dropped it.
	in = strings.Repeat("\x01", MaxFieldInput-5) + sec
	if got := Field(in, 1000, s); strings.Contains(got, sec[:5]) {
		t.Errorf("Field of a long input shows %q", got)
	}
}
