package exampleutil

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// TestSession drives the real-use path of the examples against a local
// server: -login stores the token, calls succeed through a revoked access
// token, and a revoked grant ends with the re-authentication status.
func TestSession(t *testing.T) {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	// Each Run is a run of the program: an engine of its own (Run closes
	// it) over the store they share.
	store := new(refresh.MemoryStore)
	eng := func() *refresh.Engine {
		e, err := refresh.New(refresh.Config{OAuth2: srv.Config(), Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var out, errOut strings.Builder
	s := Session{Name: "test", RefreshEnv: "EXAMPLEUTIL_TEST_RT", APIURL: srv.URL + "/api", Calls: 2,
		Reauth: func(w io.Writer) { io.WriteString(w, "log in again\n") }, ReauthStatus: 3,
		Stdout: &out, Stderr: &errOut}

	t.Setenv("EXAMPLEUTIL_TEST_RT", "")
	if got := s.Run(context.Background(), eng(), true); got != 2 {
		t.Errorf("-login without a token: status %d, want 2", got)
	}
	t.Setenv("EXAMPLEUTIL_TEST_RT", srv.Token().RefreshToken)
	if got := s.Run(context.Background(), eng(), true); got != 0 {
		t.Fatalf("login and calls: status %d, want 0; stderr %q", got, errOut.String())
	}
	srv.RevokeAccessTokens()
	if got := s.Run(context.Background(), eng(), false); got != 0 {
		t.Errorf("after an access-token revocation: status %d, want 0; stderr %q", got, errOut.String())
	}
	srv.RevokeGrants()
	srv.RevokeAccessTokens()
	if got := s.Run(context.Background(), eng(), false); got != 3 {
		t.Errorf("after the grant was revoked: status %d, want 3", got)
	}
	if !strings.Contains(errOut.String(), "log in again") {
		t.Errorf("stderr %q, want the re-authentication message", errOut.String())
	}
}
