package refreshtest

import (
	"cmp"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// clientCredentials grants a well-formed client-credentials request (RFC
// 6749 §4.4): its client authenticated, so it gets a new grant's access
// token. Called with mu held.
func (s *Server) clientCredentials(req tokenRequest, ev *TokenEvent) answer {
	s.stats.ClientCredentialsGrants++
	return s.startGrant(cmp.Or(req.other.scope, s.opts.Scope), s.opts.ClientCredentials, tokenJSON{}, ev)
}

// clientCredentialsParam reports whether the form parameter k belongs in a
// client-credentials request (RFC 6749 §4.4.2; audience and resource as
// RFC 8693 §2.1 and RFC 8707 §2 define them).
func (s *Server) clientCredentialsParam(k string) bool {
	switch k {
	case "grant_type", "scope", "audience", "resource":
		return true
	}
	return s.credential(k)
}

// ClientCredentialsToken starts a new grant, as a granted client-credentials
// request does, and returns its access token in the form [Server.Token]
// returns a login's, without a refresh token (unless
// Options.ClientCredentials.RefreshTokens is set), so that a test can give
// a client the token it would have fetched. Stats.Grants counts it, not
// Stats.ClientCredentialsGrants, which counts requests.
func (s *Server) ClientCredentialsToken() *oauth2.Token {
	return s.direct(s.opts.ClientCredentials.RefreshTokens)
}

// ClientCredentialsConfig returns a golang.org/x/oauth2/clientcredentials
// configuration for the server, as [Server.Config] returns one for
// refreshes: the same credentials, token URL, AuthStyle and Scopes.
func (s *Server) ClientCredentialsConfig() *clientcredentials.Config {
	c := s.Config()
	return &clientcredentials.Config{ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		TokenURL: c.Endpoint.TokenURL, AuthStyle: c.Endpoint.AuthStyle, Scopes: c.Scopes}
}
