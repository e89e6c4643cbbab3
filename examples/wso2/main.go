// Command wso2 calls an API published on WSO2 API Manager (API Cloud) with an
// access token that github.com/oauthkit/refresh keeps working.
//
// WSO2's token API wants the application's consumer key and secret in an
// HTTP Basic header, and scope=PRODUCTION with the refresh_token grant. It
// rotates refresh tokens by default (RenewRefreshTokenForRefreshGrant; with
// false it sends the same one back, which works too), refresh tokens expire
// (RefreshTokenValidityPeriod, one day by default), and some of its error
// paths answer with an HTML page rather than JSON.
//
// Try it without an account, against a local server that speaks that
// dialect:
//
//	go run ./examples/wso2 -offline
//
// For real, with your application's production keys and the refresh token
// of a login:
//
//	export WSO2_CONSUMER_KEY=… WSO2_CONSUMER_SECRET=…
//	export WSO2_API_URL=https://gateway.api.cloud.wso2.com/t/<tenant>/<api>/<version>/<resource>
//	WSO2_REFRESH_TOKEN=… go run ./examples/wso2 -login   # once, after the login
//	go run ./examples/wso2                               # from then on
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
)

const (
	tokenURL  = "https://gateway.api.cloud.wso2.com/token"
	authorize = "https://gateway.api.cloud.wso2.com/authorize"

	exitReauth = 3
)

// newEngine is the whole WSO2 configuration. -offline uses it too, with the
// local server's token URL and credentials.
func newEngine(tokenURL, consumerKey, consumerSecret string, store refresh.TokenStore) (*refresh.Engine, error) {
	return refresh.New(refresh.Config{
		// Config.OAuth2 sends no scope with a refresh (nor does
		// golang.org/x/oauth2), so a FormEndpoint it is.
		Endpoint: &refresh.FormEndpoint{
			TokenURL:     tokenURL,
			ClientID:     consumerKey,
			ClientSecret: consumerSecret,
			// Authorization: Basic base64(key:secret), each urlencoded
			// first as RFC 6749 §2.3.1 says; WSO2 decodes them.
			Auth:  refresh.AuthBasic,
			Scope: "PRODUCTION",
		},
		// Tokens survive restarts, and processes sharing the directory
		// refresh once between them.
		Store: store,
		// An HTML error page without an OAuth code in a 400 is taken as
		// "log in again"; in a 5xx, as a temporary failure.
	})
}

// reauth tells the user how to log in again. A program with a user
// interface would start its login flow instead.
func reauth(w io.Writer, consumerKey string) {
	fmt.Fprintf(w, `WSO2: the refresh token was refused (expired, revoked or already used), or none is stored.
Log in again: authorization-code flow at %s?response_type=code&client_id=%s&scope=PRODUCTION&redirect_uri=<yours>,
or generate a token for the application in the Developer Portal, then store it:
    WSO2_REFRESH_TOKEN=<the new refresh token> go run ./examples/wso2 -login
(a program with its own login flow calls eng.SetToken(ctx, refresh.DefaultKey, tok) there)
`, authorize, consumerKey)
}

const usage = `wso2 needs WSO2_CONSUMER_KEY and WSO2_CONSUMER_SECRET (the application's production keys)
and WSO2_API_URL (or -api), the API resource to call.
Without an account, run it against a local server that speaks WSO2's dialect:
    go run ./examples/wso2 -offline
`

func main() {
	offline := flag.Bool("offline", false, "run against a local server that speaks WSO2's dialect (no account needed)")
	login := flag.Bool("login", false, "store the token of a new login, from $WSO2_REFRESH_TOKEN")
	api := flag.String("api", os.Getenv("WSO2_API_URL"), "API resource to call (default $WSO2_API_URL)")
	storeDir := flag.String("store", "", "token directory (default: refresh-examples/wso2 in the user config directory)")
	calls := flag.Int("calls", 3, "API calls to make")
	every := flag.Duration("every", 10*time.Second, "pause between API calls")
	flag.Parse()
	if *offline {
		os.Exit(runOffline())
	}
	os.Exit(run(*login, *api, *storeDir, *calls, *every))
}

func run(login bool, apiURL, storeDir string, calls int, every time.Duration) int {
	ctx := context.Background()
	key, secret := os.Getenv("WSO2_CONSUMER_KEY"), os.Getenv("WSO2_CONSUMER_SECRET")
	if key == "" || secret == "" || apiURL == "" {
		fmt.Fprint(os.Stderr, usage)
		return 2
	}
	store, where, err := exampleutil.OpenStore("wso2", storeDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wso2:", err)
		return 1
	}
	fmt.Println("token store:", where)
	eng, err := newEngine(tokenURL, key, secret, store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wso2:", err)
		return 1
	}

	return exampleutil.Session{
		Name: "wso2", RefreshEnv: "WSO2_REFRESH_TOKEN", APIURL: apiURL, Calls: calls, Every: every,
		Reauth:       func(w io.Writer) { reauth(w, key) },
		ReauthStatus: exitReauth,
	}.Run(ctx, eng, login)
}
