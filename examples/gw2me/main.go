// Command gw2me calls the gw2.me API (https://gw2.me/dev/docs) with an access
// token that github.com/oauthkit/refresh keeps working.
//
// gw2.me's token endpoint wants client_id and client_secret in the form body
// (it refuses them in the body and a Basic header at once), issues
// single-use refresh tokens (using one twice may revoke the authorization),
// keeps one access token per client and user, and answers every OAuth error,
// invalid_grant included, with HTTP 500 and a JSON body.
//
// Try it without an account, against a local server that speaks that
// dialect:
//
//	go run ./examples/gw2me -offline
//
// For real, with your application's credentials and the refresh token of a
// login (authorization-code flow at https://gw2.me/oauth2/authorize):
//
//	export GW2ME_CLIENT_ID=… GW2ME_CLIENT_SECRET=…
//	GW2ME_REFRESH_TOKEN=… go run ./examples/gw2me -login   # once, after the login
//	go run ./examples/gw2me                                # from then on
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
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
	"golang.org/x/oauth2"
)

const (
	tokenURL  = "https://gw2.me/api/token"
	apiURL    = "https://gw2.me/api/user" // needs the identify scope
	authorize = "https://gw2.me/oauth2/authorize"

	exitReauth = 3
)

// newEngine is the whole gw2.me configuration. -offline uses it too, with
// the local server's token URL and credentials.
func newEngine(tokenURL, clientID, clientSecret string, store refresh.TokenStore) (*refresh.Engine, error) {
	return refresh.New(refresh.Config{
		OAuth2: &oauth2.Config{
			ClientID:     clientID,
			ClientSecret: clientSecret,
			Endpoint: oauth2.Endpoint{
				TokenURL: tokenURL,
				// Credentials in the body, and only there. The style must
				// be explicit: auto-detection would send a refused refresh
				// token a second time, which gw2.me may punish.
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		// Tokens survive restarts, and processes sharing the directory
		// refresh once between them.
		Store: store,
		// Nothing else: an error in a 500 is classified by its body
		// (invalid_grant means log in again), and the token is refreshed
		// only when a request needs it, as gw2.me asks.
	})
}

// reauth tells the user how to log in again. A program with a user
// interface would start its login flow instead.
func reauth(w io.Writer, clientID string) {
	fmt.Fprintf(w, `gw2.me: the authorization is gone (the refresh token was refused, or none is stored).
Log in again: open %s?response_type=code&client_id=%s&scope=identify&redirect_uri=<yours>,
exchange the code for a token at %s, then store it:
    GW2ME_REFRESH_TOKEN=<the new refresh token> go run ./examples/gw2me -login
(a program with its own login flow calls eng.SetToken(ctx, refresh.DefaultKey, tok) there)
`, authorize, clientID, tokenURL)
}

const usage = `gw2me needs GW2ME_CLIENT_ID and GW2ME_CLIENT_SECRET (register an application: https://gw2.me/dev/docs/manage-apps).
Without an account, run it against a local server that speaks gw2.me's dialect:
    go run ./examples/gw2me -offline
`

func main() {
	offline := flag.Bool("offline", false, "run against a local server that speaks gw2.me's dialect (no account needed)")
	login := flag.Bool("login", false, "store the token of a new login, from $GW2ME_REFRESH_TOKEN")
	storeDir := flag.String("store", "", "token directory (default: refresh-examples/gw2me in the user config directory)")
	calls := flag.Int("calls", 3, "API calls to make")
	every := flag.Duration("every", 10*time.Second, "pause between API calls")
	flag.Parse()
	if *offline {
		os.Exit(runOffline())
	}
	os.Exit(run(*login, *storeDir, *calls, *every))
}

func run(login bool, storeDir string, calls int, every time.Duration) int {
	ctx := context.Background()
	clientID, clientSecret := os.Getenv("GW2ME_CLIENT_ID"), os.Getenv("GW2ME_CLIENT_SECRET")
	if clientID == "" || clientSecret == "" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	store, where, err := exampleutil.OpenStore("gw2me", storeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gw2me:", err)
		return 1
	}
	fmt.Println("token store:", where)
	eng, err := newEngine(tokenURL, clientID, clientSecret, store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gw2me:", err)
		return 1
	}

	return exampleutil.Session{
		Name: "gw2me", RefreshEnv: "GW2ME_REFRESH_TOKEN", APIURL: apiURL, Calls: calls, Every: every,
		Reauth:       func(w io.Writer) { reauth(w, clientID) },
		ReauthStatus: exitReauth,
	}.Run(ctx, eng, login)
}
