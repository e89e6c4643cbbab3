// Command 2ba calls a 2BA web service (https://www.2ba.nl) with an access
// token that github.com/oauthkit/refresh keeps working.
//
// 2BA's OAuth/Token service, on its authorize server, takes the
// refresh_token grant as a form POST with client_id and client_secret in the
// body, and returns a new refresh token every time: the old one must be
// replaced at once. An expired or refused refresh token is answered with
// HTTP 400, and the user must log in again.
//
// Try it without an account, against a local server that speaks that
// dialect:
//
//	go run ./examples/2ba -offline
//
// For real, with the client credentials 2BA gave you and the refresh token
// of a login (authorization-code or password grant):
//
//	export TWOBA_CLIENT_ID=… TWOBA_CLIENT_SECRET=… TWOBA_API_URL=https://…
//	TWOBA_REFRESH_TOKEN=… go run ./examples/2ba -login   # once, after the login
//	go run ./examples/2ba                                # from then on
//
// Exit status: 0 done, 1 error, 2 missing configuration, 3 the user must log
// in again.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
)

// The authorize server is a setting in 2BA's refresh documentation
// (GlobalVariables.AuthorizeServer), and so it is here: -authorize-server or
// $TWOBA_AUTHORIZE_SERVER, from your 2BA account details.

const exitReauth = 3

// newEngine is the whole 2BA configuration. -offline uses it too, with the
// local server's address and credentials.
func newEngine(authorizeServer, clientID, clientSecret string, store refresh.TokenStore) (*refresh.Engine, error) {
	return refresh.New(refresh.Config{
		Endpoint: &refresh.FormEndpoint{
			TokenURL:     strings.TrimSuffix(authorizeServer, "/") + "/OAuth/Token",
			ClientID:     clientID,
			ClientSecret: clientSecret,
			Auth:         refresh.AuthInBody, // client_id and client_secret as form fields
		},
		// Every refresh returns a new refresh token: the engine saves it
		// before anyone uses the new access token, and processes sharing
		// the directory refresh once between them.
		Store: store,
	})
}

// reauth tells the user how to log in again. A program with a user
// interface would start its login flow instead.
func reauth(w io.Writer, authorizeServer string) {
	fmt.Fprintf(w, `2BA: the refresh token expired or was refused (HTTP 400), or none is stored.
Log in again, with the authorization-code flow (%s/OAuth/Authorize)
or the password grant (%s/OAuth/Token), then store the new token:
    TWOBA_REFRESH_TOKEN=<the new refresh token> go run ./examples/2ba -login
(a program with its own login flow calls eng.SetToken(ctx, refresh.DefaultKey, tok) there)
`, authorizeServer, authorizeServer)
}

const usage = `2ba needs TWOBA_CLIENT_ID and TWOBA_CLIENT_SECRET (from 2BA) and TWOBA_API_URL (or -api),
the web service to call, and the authorize server, -authorize-server or $TWOBA_AUTHORIZE_SERVER
(the base URL of OAuth/Token, from your 2BA account details).
Without an account, run it against a local server that speaks 2BA's dialect:
    go run ./examples/2ba -offline
`

func main() {
	offline := flag.Bool("offline", false, "run against a local server that speaks 2BA's dialect (no account needed)")
	login := flag.Bool("login", false, "store the token of a new login, from $TWOBA_REFRESH_TOKEN")
	server := flag.String("authorize-server", os.Getenv("TWOBA_AUTHORIZE_SERVER"), "2BA authorize server (base URL of OAuth/Token)")
	api := flag.String("api", os.Getenv("TWOBA_API_URL"), "web service URL to call (default $TWOBA_API_URL)")
	storeDir := flag.String("store", "", "token directory (default: refresh-examples/2ba in the user config directory)")
	calls := flag.Int("calls", 3, "API calls to make")
	every := flag.Duration("every", 10*time.Second, "pause between API calls")
	flag.Parse()
	if *offline {
		os.Exit(runOffline())
	}
	os.Exit(run(*login, *server, *api, *storeDir, *calls, *every))
}

func run(login bool, authorizeServer, apiURL, storeDir string, calls int, every time.Duration) int {
	ctx := context.Background()
	clientID, clientSecret := os.Getenv("TWOBA_CLIENT_ID"), os.Getenv("TWOBA_CLIENT_SECRET")
	if clientID == "" || clientSecret == "" || apiURL == "" || authorizeServer == "" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	store, where, err := exampleutil.OpenStore("2ba", storeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "2ba:", err)
		return 1
	}
	fmt.Println("token store:", where)
	eng, err := newEngine(authorizeServer, clientID, clientSecret, store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "2ba:", err)
		return 1
	}

	return exampleutil.Session{
		Name: "2ba", RefreshEnv: "TWOBA_REFRESH_TOKEN", APIURL: apiURL, Calls: calls, Every: every,
		Reauth:       func(w io.Writer) { reauth(w, authorizeServer) },
		ReauthStatus: exitReauth,
	}.Run(ctx, eng, login)
}
