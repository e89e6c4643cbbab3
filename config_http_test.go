package refresh_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// TestHTTPTokenURLAdvice: an http:// token URL to a host that is not
// loopback is refused with advice that works for the configuration in use.
// Config.OAuth2 has no AllowHTTP, so its advice is a FormEndpoint, and
// following the advice makes New accept the URL.
func TestHTTPTokenURLAdvice(t *testing.T) {
	const (
		tokenURL = "http://as.example/token"
		secret   = "s3cret-client-value"
		refused  = "token endpoint URL uses http:// to a host that is not loopback; use https or "
	)
	hc := &http.Client{}
	conf := &oauth2.Config{
		ClientID:     "client",
		ClientSecret: secret,
		Endpoint:     oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader},
	}
	for _, tc := range []struct {
		name   string
		config refresh.Config
		want   string
		// advised is the configuration the advice describes.
		advised refresh.Config
	}{{
		name:   "OAuth2",
		config: refresh.Config{OAuth2: conf, HTTPClient: hc},
		want: "refresh: Config.OAuth2.Endpoint.TokenURL: " + refused +
			"set Config.Endpoint instead of Config.OAuth2, to a *refresh.FormEndpoint " +
			"with AllowHTTP and the same TokenURL, ClientID, ClientSecret, Auth and HTTPClient",
		advised: refresh.Config{Endpoint: &refresh.FormEndpoint{
			TokenURL: tokenURL, ClientID: "client", ClientSecret: secret,
			Auth: refresh.AuthBasic, HTTPClient: hc, AllowHTTP: true,
		}},
	}, {
		name:    "FormEndpoint",
		config:  refresh.Config{Endpoint: &refresh.FormEndpoint{TokenURL: tokenURL, ClientSecret: secret, Auth: refresh.AuthBasic}},
		want:    "refresh: " + refused + "set FormEndpoint.AllowHTTP",
		advised: refresh.Config{Endpoint: &refresh.FormEndpoint{TokenURL: tokenURL, ClientSecret: secret, Auth: refresh.AuthBasic, AllowHTTP: true}},
	}, {
		name:    "JSONEndpoint",
		config:  refresh.Config{Endpoint: &refresh.JSONEndpoint{URL: tokenURL}},
		want:    "refresh: " + refused + "set JSONEndpoint.AllowHTTP",
		advised: refresh.Config{Endpoint: &refresh.JSONEndpoint{URL: tokenURL, AllowHTTP: true}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := refresh.New(tc.config)
			if err == nil {
				t.Fatalf("New: got nil error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("New: got error\n\t%q\nwant\n\t%q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("New: the error holds the client secret")
			}
			eng, err := refresh.New(tc.advised)
			if err != nil {
				t.Fatalf("New with the advised configuration: %v", err)
			}
			eng.Close(context.Background())
		})
	}
}

// TestHTTPTokenURLAdviceAtRefresh: an endpoint used without New (its
// Refresh called directly) refuses the URL before sending anything, with
// the same advice, as a client configuration error.
func TestHTTPTokenURLAdviceAtRefresh(t *testing.T) {
	tok := &oauth2.Token{RefreshToken: "rt-not-sent"}
	for _, tc := range []struct {
		ep    refresh.Endpoint
		field string
	}{
		{&refresh.FormEndpoint{TokenURL: "http://as.example/token"}, "FormEndpoint.AllowHTTP"},
		{&refresh.JSONEndpoint{URL: "http://as.example/token"}, "JSONEndpoint.AllowHTTP"},
	} {
		_, err := tc.ep.Refresh(context.Background(), tok)
		if !errors.Is(err, refresh.ErrClientConfig) || !strings.HasSuffix(err.Error(), "; use https or set "+tc.field) {
			t.Errorf("%T.Refresh: got %v, want an ErrClientConfig advising to set %s", tc.ep, err, tc.field)
		}
		if err != nil && strings.Contains(err.Error(), tok.RefreshToken) {
			t.Errorf("%T.Refresh: the error holds the refresh token", tc.ep)
		}
	}
}
