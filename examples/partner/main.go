// Command partner calls the partner API with an access token that
// github.com/oauthkit/refresh keeps working.
//
// The partner API's token endpoint, POST /v1/auth/token, is not a standard
// form: it takes a JSON body {"refreshToken": "…"} and two headers,
// partnerId (your partner number) and grantType: refresh_token. There are
// no client credentials. Its answers are standard (access_token,
// refresh_token "if applicable", expires_in, token_type); an expired or
// invalid refresh token gets {"error": "invalid_grant"}. Access tokens live
// 24 hours.
//
// Try it without an account, against a local server that speaks that
// dialect:
//
//	go run ./examples/partner -offline
//
// For real, with your partner id and the refresh token of a login:
//
//	export PARTNER_API_BASE=https://… PARTNER_ID=4711 PARTNER_API_URL=https://…/v1/…
//	PARTNER_REFRESH_TOKEN=… go run ./examples/partner -login   # once, after the login
//	go run ./examples/partner                                  # from then on
//
// Exit status: 0 done, 1 error, 2 missing configuration, 3 the user must log
// in again.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
)

const exitReauth = 3

// newEngine is the whole partner API configuration. -offline uses it too,
// with the local server's base URL.
func newEngine(base, partnerID string, store refresh.TokenStore) (*refresh.Engine, error) {
	return refresh.New(refresh.Config{
		Endpoint: &refresh.JSONEndpoint{
			URL:   strings.TrimSuffix(base, "/") + "/v1/auth/token",
			Field: "refreshToken", // the body is {"refreshToken": "…"}
			// Sent with exactly these names: some servers match header
			// names case-sensitively.
			Header: http.Header{
				"partnerId": {partnerID},
				"grantType": {"refresh_token"},
			},
		},
		// A response without refresh_token keeps the old one; with one,
		// the new one is saved before anyone uses the new access token.
		Store: store,
	})
}

// reauth tells the user how to log in again. A program with a user
// interface would start its login flow instead.
func reauth(w io.Writer, base string) {
	fmt.Fprintf(w, `partner API: the refresh token expired or is invalid (invalid_grant), or none is stored.
Log in again with your partner credentials at %s, then store the new token:
    PARTNER_REFRESH_TOKEN=<the new refresh token> go run ./examples/partner -login
(a program with its own login flow calls eng.SetToken(ctx, refresh.DefaultKey, tok) there)
`, base)
}

const usage = `partner needs PARTNER_API_BASE (or -base), the API's base URL, PARTNER_ID, your partner id,
and PARTNER_API_URL (or -api), the endpoint to call.
Without an account, run it against a local server that speaks the partner API's dialect:
    go run ./examples/partner -offline
`

func main() {
	offline := flag.Bool("offline", false, "run against a local server that speaks the partner API's dialect (no account needed)")
	login := flag.Bool("login", false, "store the token of a new login, from $PARTNER_REFRESH_TOKEN")
	base := flag.String("base", os.Getenv("PARTNER_API_BASE"), "base URL of the API; the token endpoint is <base>/v1/auth/token (default $PARTNER_API_BASE)")
	api := flag.String("api", os.Getenv("PARTNER_API_URL"), "endpoint to call (default $PARTNER_API_URL)")
	storeDir := flag.String("store", "", "token directory (default: refresh-examples/partner in the user config directory)")
	calls := flag.Int("calls", 3, "API calls to make")
	every := flag.Duration("every", 10*time.Second, "pause between API calls")
	flag.Parse()
	if *offline {
		os.Exit(runOffline())
	}
	os.Exit(run(*login, *base, *api, *storeDir, *calls, *every))
}

func run(login bool, base, apiURL, storeDir string, calls int, every time.Duration) int {
	ctx := context.Background()
	partnerID := os.Getenv("PARTNER_ID")
	if base == "" || partnerID == "" || apiURL == "" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	if _, err := strconv.ParseInt(partnerID, 10, 32); err != nil {
		fmt.Fprintln(os.Stderr, "partner: PARTNER_ID must be a number (int32)")
		return 2
	}
	store, where, err := exampleutil.OpenStore("partner", storeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "partner:", err)
		return 1
	}
	fmt.Println("token store:", where)
	eng, err := newEngine(base, partnerID, store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "partner:", err)
		return 1
	}

	return exampleutil.Session{
		Name: "partner", RefreshEnv: "PARTNER_REFRESH_TOKEN", APIURL: apiURL, Calls: calls, Every: every,
		Reauth:       func(w io.Writer) { reauth(w, base) },
		ReauthStatus: exitReauth,
	}.Run(ctx, eng, login)
}
