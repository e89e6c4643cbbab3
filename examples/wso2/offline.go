package main

import (
	"io"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
	"github.com/oauthkit/refresh/refreshtest"
)

// runOffline points the same configuration at a local server that behaves
// as WSO2's token API does, and runs the scripted session of
// exampleutil.Offline.
func runOffline() int {
	srv := refreshtest.NewServer(refreshtest.Options{
		TokenPath: "/token",
		Auth:      refreshtest.AuthBasic, // urlencoded Basic credentials, nowhere else
		Scope:     "PRODUCTION",          // required with every refresh, exactly
		Rotation:  refreshtest.RotateAlways,
	})
	defer srv.Close()
	conf := srv.Config() // the local server's client id and secret
	o := &exampleutil.Offline{
		Provider: "WSO2 API Manager",
		Dialect:  "consumer key and secret in an urlencoded Basic header only, scope=PRODUCTION, rotating refresh tokens",
		Server:   srv,
		APIURL:   srv.URL + "/t/example.com/orders/1.0.0/orders",
		NewEngine: func(store refresh.TokenStore) (*refresh.Engine, error) {
			return newEngine(srv.TokenURL, conf.ClientID, conf.ClientSecret, store)
		},
		Reauth:       func(w io.Writer) { reauth(w, conf.ClientID) },
		ReauthStatus: exitReauth,
	}
	return o.Run()
}
