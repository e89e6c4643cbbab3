package refresh

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// A Fetcher is an [Endpoint] that can get a token for a key from a grant
// that needs no refresh token: the client credentials grant
// ([ClientCredentials]), token exchange, a JWT bearer grant. The engine
// calls Fetch when the key has no token, or its token has no refresh token
// (Refresh otherwise), with the guarantees of a refresh: one token request
// per key at a time in a process and, with a [Locker] store, across
// processes, so that a fleet shares one token; the token is saved before
// use and adopted by the others; an expiry or a 401 from the API fetches
// once more.
//
// A fetch spends nothing, so a failure never needs a login: a refused
// grant wraps [ErrClientConfig] (the key is tried again at most every few
// seconds, on demand), and temporary failures are retried as a refresh's.
type Fetcher interface {
	Endpoint

	// Fetch requests a new token for key. The token may have a refresh
	// token; the engine then refreshes with it until the server refuses it,
	// and fetches again once the key has none.
	Fetch(ctx context.Context, key string) (*oauth2.Token, error)
}

// ClientCredentials is the client credentials grant (RFC 6749 §4.4): a
// program that acts on its own behalf gets tokens with its client
// credentials alone. Its FormEndpoint says how to reach and authenticate to
// the token endpoint: TokenURL, ClientID, ClientSecret and Auth, Scope,
// Params (for example "audience" or "resource"), Header, HTTPClient,
// RevocationURL.
//
// One engine key is one token: use a key per (client, scope set, audience)
// that the program needs, for example "billing-api" and "reports-api", each
// with a ClientCredentials of its own in an engine of its own, or one
// engine per client and the key naming the token's purpose. Over a shared
// store the processes of a fleet then fetch one token per key between them
// instead of one each (see [Fetcher]).
type ClientCredentials struct {
	FormEndpoint

	// auto tries AuthBasic, then AuthInBody, as golang.org/x/oauth2 does
	// for oauth2.AuthStyleAutoDetect: a failed client credentials request
	// spends nothing. See ClientCredentialsFrom.
	auto bool
}

// Fetch implements [Fetcher]: it posts grant_type=client_credentials.
func (c *ClientCredentials) Fetch(ctx context.Context, key string) (*oauth2.Token, error) {
	f := c.FormEndpoint
	if c.auto {
		f.Auth = AuthBasic
	}
	tok, err := f.clientCredentials(ctx)
	if c.auto && refusedClient(err) {
		f.Auth = AuthInBody
		tok, err = f.clientCredentials(ctx)
	}
	return tok, err
}

// clientCredentials sends one client credentials request.
func (f *FormEndpoint) clientCredentials(ctx context.Context) (*oauth2.Token, error) {
	if err := f.validate(); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %w", ErrClientConfig, err)}
	}
	form := url.Values{}
	for k, vs := range f.Params {
		form[k] = vs
	}
	form.Set("grant_type", "client_credentials")
	if f.Scope != "" {
		form.Set("scope", f.Scope)
	}
	req, assertion, err := f.newRequest(ctx, f.TokenURL, form)
	if err != nil {
		return nil, requestFailed(err, "token request", false)
	}
	return send(httpClient(f.HTTPClient), req, keepNames(f.KeepExtra), f.ClientSecret, assertion)
}

// refusedClient reports whether err is the token endpoint refusing the
// client's authentication: worth the other style under auto-detection.
func refusedClient(err error) bool {
	var x *Error
	return errors.As(err, &x) && (x.Code == "invalid_client" || x.Code == "" && x.StatusCode == 401)
}

// ClientCredentialsFrom returns the [ClientCredentials] of c, a
// golang.org/x/oauth2/clientcredentials configuration, as it is: its token
// URL, client ID and secret, scopes and endpoint parameters, and its auth
// style (auto-detection tries the Authorization header first, then the
// body, as x/oauth2 does). client, if not nil, is the HTTP client for the
// token endpoint (the oauth2.HTTPClient context value of x/oauth2). New
// checks the result as any FormEndpoint.
func ClientCredentialsFrom(c *clientcredentials.Config, client *http.Client) *ClientCredentials {
	cc := &ClientCredentials{FormEndpoint: FormEndpoint{
		TokenURL:     c.TokenURL,
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scope:        strings.Join(c.Scopes, " "),
		HTTPClient:   client,
	}}
	if len(c.EndpointParams) > 0 {
		cc.Params = url.Values{}
		for k, vs := range c.EndpointParams {
			cc.Params[k] = append([]string(nil), vs...)
		}
	}
	switch c.AuthStyle {
	case oauth2.AuthStyleInParams:
		cc.Auth = AuthInBody
	case oauth2.AuthStyleInHeader:
		cc.Auth = AuthBasic
	default:
		cc.Auth, cc.auto = AuthBasic, true
	}
	return cc
}
