package exampleutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// Session is the real-use part every example shares once its engine is
// built: take the token of a new login if asked, then call the API a few
// times and react to what the library reports.
type Session struct {
	Name       string // the program's name, prefixed to messages
	RefreshEnv string // the variable holding a new login's refresh token (for -login)
	APIURL     string
	Calls      int
	Every      time.Duration

	// Reauth prints what to do when the user must log in again; Run then
	// returns ReauthStatus.
	Reauth       func(w io.Writer)
	ReauthStatus int

	Stdout, Stderr io.Writer // nil: os.Stdout, os.Stderr
}

// Run returns the program's exit status: 0 when the last call succeeded,
// ReauthStatus when the user must log in again, 2 for a missing -login
// token, 1 otherwise. It closes eng when it is done.
func (s Session) Run(ctx context.Context, eng *refresh.Engine, login bool) (status int) {
	stdout, stderr := s.Stdout, s.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	defer func() {
		// Before the program exits: a token whose save failed gets a last
		// attempt, and Close names the keys it could not save.
		if err := eng.Close(ctx); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
			status = max(status, 1)
		}
	}()
	if login {
		// After a login, hand its token to the engine: SetToken saves it in
		// the store, where every later run starts from. Only then: a
		// refresh token stored again later may be one already rotated
		// away, and sending it would be a reuse.
		rt := os.Getenv(s.RefreshEnv)
		if rt == "" {
			fmt.Fprintf(stderr, "%s: -login needs %s\n", s.Name, s.RefreshEnv)
			return 2
		}
		if err := eng.SetToken(ctx, refresh.DefaultKey, &oauth2.Token{RefreshToken: rt}); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
			return 1
		}
		fmt.Fprintln(stdout, "stored the new login's refresh token", refresh.Fingerprint(rt))
	}

	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	for i := range s.Calls {
		if i > 0 {
			time.Sleep(s.Every)
		}
		summary, err := Get(ctx, client, s.APIURL)
		var rerr *refresh.Error
		switch {
		case errors.Is(err, refresh.ErrReauthRequired):
			s.Reauth(stderr)
			return s.ReauthStatus
		case errors.As(err, &rerr) && rerr.Temporary():
			fmt.Fprintf(stderr, "%s: token endpoint unavailable, trying again later: %v\n", s.Name, err)
			status = 1 // unless a later call succeeds
			continue
		case err != nil:
			fmt.Fprintf(stderr, "%s: %v\n", s.Name, err)
			return 1
		}
		fmt.Fprintln(stdout, summary)
		status = 0
	}
	return status
}
