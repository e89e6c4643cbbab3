package main

import (
	"io"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
	"github.com/oauthkit/refresh/refreshtest"
)

// runOffline points the same configuration at a local server that behaves
// as gw2.me does, and runs the scripted session of exampleutil.Offline.
func runOffline() int {
	srv := refreshtest.NewServer(refreshtest.Options{
		TokenPath:              "/api/token",
		Auth:                   refreshtest.AuthBody,     // client_id and client_secret in the body, nowhere else
		Errors:                 refreshtest.Errors500,    // every OAuth error is an HTTP 500
		OneAccessTokenPerGrant: true,                     // a refresh kills the previous access token
		Rotation:               refreshtest.RotateAlways, // single-use refresh tokens; a reuse revokes the grant
	})
	defer srv.Close()
	conf := srv.Config() // the local server's client id and secret
	o := &exampleutil.Offline{
		Provider: "gw2.me",
		Dialect:  "client_id and client_secret in the form body only, every OAuth error as HTTP 500, one access token per grant, single-use refresh tokens",
		Server:   srv,
		APIURL:   srv.URL + "/api/user",
		NewEngine: func(store refresh.TokenStore) (*refresh.Engine, error) {
			return newEngine(srv.TokenURL, conf.ClientID, conf.ClientSecret, store)
		},
		Reauth:       func(w io.Writer) { reauth(w, conf.ClientID) },
		ReauthStatus: exitReauth,
	}
	return o.Run()
}
