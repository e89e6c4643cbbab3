package refreshtest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// A test of code that calls an API through the refresh library: the access
// token dies early, the library refreshes it once, and the call succeeds.
func Example() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()

	// The code under test, configured for the test server and logged in.
	eng, err := refresh.New(refresh.Config{OAuth2: srv.Config()})
	if err != nil {
		log.Fatal(err)
	}
	if err := eng.SetToken(context.Background(), refresh.DefaultKey, srv.Token()); err != nil {
		log.Fatal(err)
	}
	client := eng.Client(nil)

	srv.RevokeAccessTokens() // the API now rejects the token it holds

	resp, err := client.Post(srv.URL+"/v1/notes", "text/plain", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	st := srv.Stats()
	fmt.Println("status:", resp.StatusCode)
	fmt.Println("401s:", st.Served401, "refreshes:", st.Refreshes, "reuses:", st.Reuses)
	// Output:
	// status: 200
	// 401s: 1 refreshes: 1 reuses: 0
}

// gw2.me answers every OAuth error with HTTP 500, invalid_grant included.
func ExampleOptions_gw2() {
	srv := refreshtest.NewServer(refreshtest.Options{
		Errors:                 refreshtest.Errors500,
		OneAccessTokenPerGrant: true,
	})
	defer srv.Close()
	tok := srv.Token()
	srv.RevokeGrants() // the user revoked the application

	conf := srv.Config()
	resp, err := http.PostForm(srv.TokenURL, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {conf.ClientID},
		"client_secret": {conf.ClientSecret},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 500 {"error":"invalid_grant","error_description":"The grant was revoked."}
}

// Faults make a share of token requests fail; Stats tell how many did.
func ExampleServer_SetFaults() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	tok := srv.Token()

	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultTooManyRequests, RetryAfter: 2 * time.Second})
	conf := srv.Config()
	form := url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {tok.RefreshToken},
		"client_id":     {conf.ClientID},
		"client_secret": {conf.ClientSecret},
	}
	resp, err := http.PostForm(srv.TokenURL, form)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Retry-After"))

	srv.SetFaults(refreshtest.Faults{}) // the endpoint recovers
	resp, err = http.PostForm(srv.TokenURL, form)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	st := srv.Stats()
	fmt.Println(resp.StatusCode, st.TokenRequests, st.Faults, st.Refreshes)
	// Output:
	// 429 2
	// 200 2 1 1
}

// golang.org/x/oauth2's client-credentials client against the server: one
// token request serves its calls, and when the token is revoked early it
// keeps sending it until it expires, which is what a test of a client that
// heeds the 401 checks.
func ExampleServer_ClientCredentialsConfig() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	client := srv.ClientCredentialsConfig().Client(context.Background())
	for range 2 {
		resp, err := client.Get(srv.URL + "/v1/status")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println("status:", resp.StatusCode)
		srv.RevokeAccessTokens()
	}
	st := srv.Stats()
	fmt.Println("grants:", st.ClientCredentialsGrants, "401s:", st.Served401)
	// Output:
	// status: 200
	// status: 401
	// grants: 1 401s: 1
}
