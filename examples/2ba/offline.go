package main

import (
	"io"
	"strings"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
	"github.com/oauthkit/refresh/refreshtest"
)

// runOffline points the same configuration at a local server that behaves
// as 2BA's OAuth/Token service does, and runs the scripted session of
// exampleutil.Offline.
func runOffline() int {
	srv := refreshtest.NewServer(refreshtest.Options{
		TokenPath: "/OAuth/Token",
		Auth:      refreshtest.AuthBody,     // client_id and client_secret in the body, nowhere else
		Rotation:  refreshtest.RotateAlways, // a new refresh token every time
		Errors:    refreshtest.ErrorsRFC,    // a refused refresh token is HTTP 400 invalid_grant
	})
	defer srv.Close()
	conf := srv.Config() // the local server's client id and secret
	// The local authorize server: the same base URL + "/OAuth/Token" as
	// for real.
	authorizeServer := strings.TrimSuffix(srv.TokenURL, "/OAuth/Token")
	o := &exampleutil.Offline{
		Provider: "2BA",
		Dialect:  "OAuth/Token with client_id and client_secret in the form body, a new refresh token every time, HTTP 400 invalid_grant for a refused one",
		Server:   srv,
		APIURL:   srv.URL + "/webservice",
		NewEngine: func(store refresh.TokenStore) (*refresh.Engine, error) {
			return newEngine(authorizeServer, conf.ClientID, conf.ClientSecret, store)
		},
		Reauth:       func(w io.Writer) { reauth(w, authorizeServer) },
		ReauthStatus: exitReauth,
	}
	return o.Run()
}
