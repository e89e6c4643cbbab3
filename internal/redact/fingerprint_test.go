package redact_test

import (
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/redact"
)

// TestFingerprintIsTheEngines: "[token <fingerprint>]" markers name a token
// as the engine's errors and logs do.
func TestFingerprintIsTheEngines(t *testing.T) {
	for _, tok := range []string{"", "abcd", "RT-SECRET", "a/b+c=d"} {
		if got, want := redact.Fingerprint(tok), refresh.Fingerprint(tok); got != want {
			t.Errorf("Fingerprint(%q) = %q, refresh.Fingerprint = %q", tok, got, want)
		}
	}
}
