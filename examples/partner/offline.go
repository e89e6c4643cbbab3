package main

import (
	"io"
	"net/http"
	"strings"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/examples/internal/exampleutil"
	"github.com/oauthkit/refresh/refreshtest"
)

// runOffline points the same configuration at a local server that behaves
// as the partner API's token endpoint does, and runs the scripted session of
// exampleutil.Offline.
func runOffline() int {
	const partnerID = "4711"
	srv := refreshtest.NewServer(refreshtest.Options{
		TokenPath: "/v1/auth/token",
		JSON: &refreshtest.JSONDialect{
			Field: "refreshToken", // {"refreshToken": "…"}; anything else is invalid_request
			// Both headers, with exactly these values, on every request.
			Header: http.Header{"partnerId": {partnerID}, "grantType": {"refresh_token"}},
		},
		Rotation: refreshtest.RotateAlways,
	})
	defer srv.Close()
	// The local server's base URL: the same base + "/v1/auth/token" as for
	// real. (refreshtest serves the API on another listener.)
	base := strings.TrimSuffix(srv.TokenURL, "/v1/auth/token")
	o := &exampleutil.Offline{
		Provider: "partner API",
		Dialect:  "POST /v1/auth/token with a JSON body {\"refreshToken\": …} and headers partnerId and grantType: refresh_token, rotating refresh tokens, 400 invalid_grant for a refused one",
		Server:   srv,
		APIURL:   srv.URL + "/v1/orders",
		NewEngine: func(store refresh.TokenStore) (*refresh.Engine, error) {
			return newEngine(base, partnerID, store)
		},
		Reauth:       func(w io.Writer) { reauth(w, "https://api.partner.example") },
		ReauthStatus: exitReauth,
	}
	return o.Run()
}
