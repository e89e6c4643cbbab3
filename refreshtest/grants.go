package refreshtest

import (
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// Grant types the token endpoint takes (RFC 6749 §6 and §4.4, RFC 8693 §2.1).
const (
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
	GrantTokenExchange     = "urn:ietf:params:oauth:grant-type:token-exchange"
)

// TokenTypeAccessToken is the token type identifier (RFC 8693 §3) of the
// server's access tokens: the only subject_token_type, actor_token_type and
// requested_token_type a token exchange takes, and its issued_token_type.
// The server's tokens are opaque, not JWTs, so it does not take
// "urn:ietf:params:oauth:token-type:jwt".
const TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// GrantOptions configure a grant that needs no refresh token:
// Options.ClientCredentials or Options.TokenExchange. Each granted request
// starts a grant of its own, whose tokens the API accepts, the revocation
// methods and endpoint revoke and Options.Lifetime expires as a login's.
// The zero value lets the client use the grant, grants whatever scope,
// audience and resource it asks for, and issues an access token alone.
type GrantOptions struct {
	// Unauthorized refuses the grant with unauthorized_client: the server
	// knows it, but the client may not use it (RFC 6749 §5.2). Optional.
	Unauthorized bool

	// Scopes, if set, are the scopes a request may ask for; a scope
	// parameter naming another is refused with invalid_scope. Optional:
	// nil grants any. The answer's scope is the one asked for; a request
	// that asks for none gets Options.Scope (client credentials) or the
	// subject token's (token exchange).
	Scopes []string

	// Audiences, if set, are the values the audience and resource
	// parameters may take; another is refused with invalid_target (RFC 8693
	// §2.2.2, RFC 8707 §2). Optional: nil allows any. Either way a resource
	// must be an absolute URI without a fragment (RFC 8707 §2).
	Audiences []string

	// RefreshTokens makes the answer carry a refresh token too, which
	// refreshes and rotates as a login's does. Optional: by default there
	// is none, as RFC 6749 §4.4.3 recommends for client credentials.
	RefreshTokens bool
}

// otherGrant is what a client-credentials or token exchange request asked
// for.
type otherGrant struct {
	scope              string
	audience, resource []string // as sent, repeated or not
	subject, actor     string   // the tokens a token exchange presented
}

// readOtherGrant reads and checks, once the client has authenticated, a
// request of a grant other than refresh_token, and reports whether req is
// one. What needs the server's tokens is checked when it is handled.
func (s *Server) readOtherGrant(form url.Values, req *tokenRequest) bool {
	var opts GrantOptions
	var defined func(k string) bool
	switch req.grantType {
	case GrantClientCredentials:
		opts, defined = s.opts.ClientCredentials, s.clientCredentialsParam
	case GrantTokenExchange:
		opts, defined = s.opts.TokenExchange, s.tokenExchangeParam
	default:
		return false
	}
	req.rt = "" // nothing to spend: a refresh_token parameter is merely unknown
	req.other = &otherGrant{
		scope:    form.Get("scope"),
		audience: form["audience"],
		resource: form["resource"],
		subject:  form.Get("subject_token"),
		actor:    form.Get("actor_token"),
	}
	req.err = s.checkOtherGrant(form, req.grantType, opts, defined)
	return true
}

func (s *Server) checkOtherGrant(form url.Values, grantType string, opts GrantOptions, defined func(k string) bool) *oauthError {
	if s.opts.Strict {
		if e := undefined(form, defined); e != nil {
			return e
		}
	}
	switch {
	case opts.Unauthorized:
		return refuse("unauthorized_client", "This client may not use grant type %s.", grantType)
	case grantType == GrantClientCredentials && s.opts.Public:
		return refuse("unauthorized_client", "A public client cannot use client credentials (RFC 6749 §4.4).")
	case grantType == GrantTokenExchange:
		if e := checkExchange(form); e != nil {
			return e
		}
	}
	if e := opts.checkScope(form.Get("scope")); e != nil {
		return e
	}
	return opts.checkTargets(form["audience"], form["resource"])
}

func (o GrantOptions) checkScope(scope string) *oauthError {
	if o.Scopes == nil {
		return nil
	}
	for _, sc := range strings.Fields(scope) {
		if !slices.Contains(o.Scopes, sc) {
			return refuse("invalid_scope", "Scope %q is not one this client may ask for.", sc)
		}
	}
	return nil
}

func (o GrantOptions) checkTargets(audience, resource []string) *oauthError {
	for _, r := range resource {
		if u, err := url.Parse(r); err != nil || !u.IsAbs() || strings.Contains(r, "#") {
			return refuse("invalid_target", "Resource %q is not an absolute URI without a fragment.", r)
		}
	}
	if o.Audiences == nil {
		return nil
	}
	for _, t := range slices.Concat(audience, resource) {
		if !slices.Contains(o.Audiences, t) {
			return refuse("invalid_target", "This server issues no tokens for %q.", t)
		}
	}
	return nil
}

// repeatable reports whether form may repeat the parameter k: audience and
// resource, in the grants that take them (RFC 8693 §2.1, RFC 8707 §2).
func repeatable(form url.Values, k string) bool {
	switch form.Get("grant_type") {
	case GrantClientCredentials, GrantTokenExchange:
		return k == "audience" || k == "resource"
	}
	return false
}

// newGrant starts a grant whose token responses carry scope. Called with
// mu held.
func (s *Server) newGrant(scope string) *grant {
	g := &grant{id: len(s.grants) + 1, scope: scope}
	s.grants = append(s.grants, g)
	return g
}

// startGrant answers a granted client-credentials or token exchange
// request with the first tokens of a new grant. Called with mu held.
func (s *Server) startGrant(scope string, opts GrantOptions, t tokenJSON, ev *TokenEvent) answer {
	g := s.newGrant(scope)
	now := s.opts.Now()
	t.AccessToken, _ = s.issueAccess(g, now)
	if opts.RefreshTokens {
		t.RefreshToken, _ = s.issueRefresh(g, now)
	}
	body := s.marshal(t, g)
	ev.granted(g.id, g.n)
	g.n++
	return success(body)
}

// direct starts a grant without a request, with Options.Scope, and returns
// its first tokens as [Server.Token] documents them; a refresh token only if
// refresh is set.
func (s *Server) direct(refresh bool) *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Grants++
	g := s.newGrant(s.opts.Scope)
	now := s.opts.Now()
	at, a := s.issueAccess(g, now)
	tok := &oauth2.Token{AccessToken: at, TokenType: "Bearer"}
	if refresh {
		tok.RefreshToken, _ = s.issueRefresh(g, now)
	}
	g.n++
	if !a.expiry.IsZero() {
		tok.Expiry = a.expiry
		tok.ExpiresIn = s.expiresIn()
	}
	if ex := s.extra(g.id, 0); len(ex) > 0 {
		tok = tok.WithExtra(ex)
	}
	return tok
}
