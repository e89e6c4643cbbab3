package exampleutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// Offline is the scripted run behind each example's -offline flag. Against
// a local server that speaks the provider's dialect, with the example's own
// configuration, it logs in, calls the API, has the server revoke the
// access token (the library refreshes and retries, unseen), then revoke the
// grant (the example's re-authentication path), and logs in again. It
// prints what happens and checks the server's counters at each step.
type Offline struct {
	Provider string              // "gw2.me"
	Dialect  string              // what the local server insists on, in a few words
	Server   *refreshtest.Server // speaking the provider's dialect
	APIURL   string              // an API URL on Server.URL

	// NewEngine builds the engine exactly as the real run does, with the
	// URLs and credentials of Server.
	NewEngine func(store refresh.TokenStore) (*refresh.Engine, error)

	// Reauth prints what the real run prints when the user must log in
	// again; the real run then exits with ReauthStatus.
	Reauth       func(w io.Writer)
	ReauthStatus int
}

// Run runs the script and returns the exit status: 0 if everything behaved
// as expected, 1 otherwise.
func (o *Offline) Run() int {
	ctx := context.Background()
	out := os.Stdout
	var broken []string
	expect := func(ok bool, format string, args ...any) {
		if !ok {
			msg := fmt.Sprintf(format, args...)
			broken = append(broken, msg)
			fmt.Fprintln(out, "    ✗ expected", msg)
		}
	}

	dir, err := os.MkdirTemp("", "refresh-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	store, where, err := OpenStore("", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	eng, err := o.NewEngine(store)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	srv := o.Server

	fmt.Fprintf(out, "%s, offline: a local server speaks its dialect: %s.\n", o.Provider, o.Dialect)
	fmt.Fprintf(out, "  token endpoint  %s\n  API             %s\n  token store     %s\n", srv.TokenURL, o.APIURL, where)
	fmt.Fprintf(out, "Tokens are shown as fingerprints (refresh.Fingerprint), never as values.\n\n")

	step := 0
	say := func(format string, args ...any) {
		step++
		fmt.Fprintf(out, "%2d. %s\n", step, fmt.Sprintf(format, args...))
	}
	path := o.APIURL
	if u, err := url.Parse(o.APIURL); err == nil {
		path = u.Path
	}
	call := func() error {
		summary, err := Get(ctx, client, o.APIURL)
		if err != nil {
			say("GET %s → error: %v", path, err)
		} else {
			say("GET %s → %s", path, summary)
		}
		return err
	}
	stored := func() string {
		tok, err := store.Load(ctx, refresh.DefaultKey)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return refresh.Fingerprint(tok.RefreshToken)
	}
	login := func(again string) {
		// A real program runs its login flow here; the test server's
		// Token() is a completed login. Then, as after every login:
		tok := srv.Token()
		err := eng.SetToken(ctx, refresh.DefaultKey, tok)
		say("log in%s (stands in for the authorization-code flow); eng.SetToken saves the new token: refresh token %s",
			again, refresh.Fingerprint(tok.RefreshToken))
		expect(err == nil, "SetToken to succeed: %v", err)
		expect(stored() == refresh.Fingerprint(tok.RefreshToken), "the login's token in the store, found %s", stored())
	}

	login("")
	expect(call() == nil, "the first call to succeed")
	expect(call() == nil, "the second call to succeed")

	srv.RevokeAccessTokens()
	say("the server revokes the access token (the API answers 401 to it from now on)")
	before, rtBefore := srv.Stats(), stored()
	err = call()
	after := srv.Stats()
	expect(err == nil, "the call after the revocation to succeed")
	fmt.Fprintf(out, "    unseen by the caller: the API answered %d × 401, the library refreshed %d × (refresh token %s → %s, saved in the store) and retried\n",
		after.Served401-before.Served401, after.Refreshes-before.Refreshes, rtBefore, stored())
	expect(after.Served401-before.Served401 == 1 && after.Refreshes-before.Refreshes == 1,
		"one 401 and one refresh, got %d and %d", after.Served401-before.Served401, after.Refreshes-before.Refreshes)
	expect(stored() != rtBefore, "the rotated refresh token in the store")

	srv.RevokeGrants()
	say("the server revokes the grant (as when the user revokes the application)")
	before = srv.Stats()
	err = call()
	after = srv.Stats()
	reauth := errors.Is(err, refresh.ErrReauthRequired)
	expect(reauth, "errors.Is(err, refresh.ErrReauthRequired)")
	expect(after.InvalidGrant-before.InvalidGrant == 1, "the refresh to be refused with invalid_grant")
	if reauth {
		fmt.Fprintf(out, "    errors.Is(err, refresh.ErrReauthRequired): the real run prints this and exits with status %d:\n", o.ReauthStatus)
		var b strings.Builder
		o.Reauth(&b)
		for line := range strings.Lines(b.String()) {
			fmt.Fprint(out, "    | ", line)
		}
	}
	before = srv.Stats()
	err = call()
	after = srv.Stats()
	expect(errors.Is(err, refresh.ErrReauthRequired), "ErrReauthRequired again")
	expect(after.TokenRequests == before.TokenRequests, "no token request while the user must log in, got %d",
		after.TokenRequests-before.TokenRequests)
	fmt.Fprintf(out, "    ErrReauthRequired again, and %d token-endpoint calls: the key waits for a new login\n",
		after.TokenRequests-before.TokenRequests)

	login(" again")
	expect(call() == nil, "the call after the new login to succeed")

	st := srv.Stats()
	fmt.Fprintf(out, "\nserver: %d token requests (%d granted, %d refused with invalid_grant), %d reuses; API: %d × 200, %d × 401\n",
		st.TokenRequests, st.Refreshes, st.InvalidGrant, st.Reuses, st.Served200, st.Served401)
	expect(st.Reuses == 0, "no reuse, got %d", st.Reuses)
	expect(st.InvalidClient+st.InvalidRequest+st.InvalidScope+st.UnsupportedGrantType == 0,
		"no malformed token request, got invalid_client %d, invalid_request %d, invalid_scope %d, unsupported_grant_type %d",
		st.InvalidClient, st.InvalidRequest, st.InvalidScope, st.UnsupportedGrantType)
	if len(broken) > 0 {
		fmt.Fprintf(out, "FAILED: %d expectation(s) not met\n", len(broken))
		return 1
	}
	fmt.Fprintf(out, "OK: the %s configuration behaved as expected\n", o.Provider)
	return 0
}
