package refreshtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// A Server is an authorization server and a protected API, on two loopback
// listeners (two hosts, as in production). Create it with [NewServer]; it is
// safe for concurrent use.
type Server struct {
	// URL is the base URL of the protected API, such as
	// "http://127.0.0.1:41423", without a trailing slash. Every path under
	// it is the API.
	URL string
	// TokenURL is the URL of the token endpoint, on another listener.
	TokenURL string
	// RevocationURL is the URL of the revocation endpoint (RFC 7009), on
	// the listener of the token endpoint.
	RevocationURL string
	// Issuer is the authorization server's identifier, the origin of
	// TokenURL, which a client assertion's aud may name.
	Issuer string

	opts    Options // normalized; never changes
	api     *httptest.Server
	token   *httptest.Server
	closing chan struct{} // closed by Close: hanging and delayed handlers return
	once    sync.Once     // closes closing

	mu        sync.Mutex              // guards every field below
	grants    []*grant                // by id-1
	access    map[string]*accessToken // every access token ever issued
	refresh   map[string]*refreshToken
	inflight  map[string]int // refresh token → requests being handled
	faults    Faults
	faultDebt float64 // share of a failure owed to the next request; see fail
	gate      *Gate   // holds arriving token requests; nil: none
	jtis      jtiSet  // the client assertions seen, against replays
	stats     Stats
}

// grant is one login's token family: every token descends from it, and
// revoking it revokes them all.
type grant struct {
	id      int
	n       int            // token pairs issued; the login's is 0
	access  []*accessToken // issued, oldest first
	refresh string         // the newest refresh token issued; "" if it has none
	scope   string         // the scope its tokens are answered with
	revoked bool           // by a reuse, Revoke, RevokeGrants or the revocation endpoint
}

type accessToken struct {
	g       *grant
	n       int // its pair number in g
	value   string
	expiry  time.Time // zero: never expires
	revoked bool
}

type refreshToken struct {
	g      *grant
	n      int       // its pair number in g
	expiry time.Time // zero: never expires
	// spent is when the token was first used under rotation; zero while
	// it is live. answer is what that use returned, and next the refresh
	// token it returned (RotateGrace replays both).
	spent  time.Time
	answer []byte
	next   *refreshToken
	// refused, if set, is how the token is refused when it is presented
	// live (RefuseRefreshTokens).
	refused *oauthError
}

// Stats are the server's counters since it started. They are exact: every
// event is counted under the server's lock when it is decided, whether or not
// its answer reached the client (see Faults.AfterGrant).
type Stats struct {
	// Grants counts the grants a test started without a request: calls of
	// [Server.Token] (logins) and [Server.ClientCredentialsToken].
	Grants int

	// TokenRequests counts every request to the token endpoint, refused,
	// failed or granted.
	TokenRequests int
	// Refreshes counts granted refreshes, including grace reuses.
	Refreshes int
	// Rotations counts granted refreshes that issued a new refresh token.
	Rotations int
	// ClientCredentialsGrants and TokenExchanges count granted requests of
	// those grants; each started a grant of its own.
	ClientCredentialsGrants, TokenExchanges int
	// Reuses counts presentations of spent refresh tokens, forgiven within
	// a grace window or not.
	Reuses int
	// FamiliesRevoked counts grants revoked because of a reuse (not by
	// Revoke or RevokeGrants).
	FamiliesRevoked int
	// ConcurrentLosers counts requests refused because another request
	// with the same refresh token was in flight (also counted in
	// InvalidRequest).
	ConcurrentLosers int
	// Faults counts token and revocation requests answered with an
	// injected fault.
	Faults int
	// The refused token and revocation requests, by OAuth error code.
	InvalidRequest, InvalidClient, InvalidGrant, InvalidScope, UnsupportedGrantType, UnsupportedTokenType int

	// unauthorized_client and invalid_target (RFC 8707 §2) refuse only
	// client-credentials and token exchange requests.
	UnauthorizedClient, InvalidTarget int

	// RevocationRequests counts every request to the revocation endpoint,
	// refused, failed or answered.
	RevocationRequests int
	// Revocations counts revocation requests that revoked a token the
	// server issued (one revoked already included); an unknown token is
	// answered 200 too, but not counted here.
	Revocations int

	// Assertions counts the token and revocation requests whose client
	// assertion was accepted (AuthPrivateKeyJWT, AuthClientSecretJWT),
	// AssertionsRejected those refused for their client authentication,
	// AssertionReplays the refused for a jti seen before; all as the
	// request is read, even if a fault then drops it.
	Assertions, AssertionsRejected, AssertionReplays int

	// APIRequests counts every request to the protected API; Served200,
	// Served401, Served403 and Served400 count them by answer.
	APIRequests                                int
	Served200, Served401, Served403, Served400 int
}

// NewServer starts and returns a new Server, like httptest.NewServer. The
// caller should call Close when finished, to shut it down. It panics if opts
// are invalid (an unknown enum value, a negative Grace, a Faults.Rate outside
// [0, 1]…) or if it cannot listen on loopback.
func NewServer(opts Options) *Server {
	o, err := opts.normalize()
	if err != nil {
		panic("refreshtest: " + err.Error())
	}
	s := &Server{
		opts:     o,
		closing:  make(chan struct{}),
		access:   map[string]*accessToken{},
		refresh:  map[string]*refreshToken{},
		inflight: map[string]int{},
		faults:   o.Faults,
	}
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	s.token = httptest.NewServer(http.HandlerFunc(s.serveAuth))
	s.URL = s.api.URL
	s.TokenURL = s.token.URL + o.TokenPath
	s.RevocationURL = s.token.URL + o.RevocationPath
	s.Issuer = s.token.URL
	return s
}

// Close shuts the server down and blocks until every request being handled
// has returned. Hanging and delayed token requests are abandoned.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	// A fault may be blocked writing to a client that stopped reading.
	s.token.CloseClientConnections()
	s.api.Close()
	s.token.Close()
}

// Config returns a client configuration for the server: its client
// credentials and token URL, AuthStyle oauth2.AuthStyleInParams for AuthBody
// and public clients, oauth2.AuthStyleInHeader for AuthBasic, and Scopes
// holding Options.Scope if set.
//
// golang.org/x/oauth2 always urlencodes Basic credentials, so it cannot
// speak AuthBasicRaw when they hold characters that the encoding changes (the
// default secret does), and it cannot speak a JSON dialect. Config then still
// carries the credentials and the URL: use
// refresh.FormEndpoint{Auth: refresh.AuthBasicRaw} or refresh.JSONEndpoint.
func (s *Server) Config() *oauth2.Config {
	c := &oauth2.Config{
		ClientID:     s.opts.ClientID,
		ClientSecret: s.opts.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	if !s.opts.Public && s.opts.Auth != AuthBody {
		c.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	if s.opts.Scope != "" {
		c.Scopes = []string{s.opts.Scope}
	}
	return c
}

// Token starts a new grant, as a completed login does, and returns its first
// token pair: AccessToken, TokenType "Bearer", RefreshToken, and Expiry and
// ExpiresIn unless tokens never expire, and the Extra of Options.Extra.
//
// Token values look like "at-1-0-…" and "rt-1-0-…" (grant 1, pair 0),
// followed by 16 random hex digits (and Options.RefreshTokenSuffix), so
// that they are readable in failure messages but cannot be hardcoded by a
// test. Every call starts another grant: one per user or per key of a
// multi-user test.
func (s *Server) Token() *oauth2.Token { return s.direct(true) }

// expiresIn is the expires_in of new access tokens; 0 if they never expire.
func (s *Server) expiresIn() int64 {
	return int64(max(s.opts.Lifetime, 0) / time.Second)
}

// issueAccess makes the access token of g's pair number g.n, valid from now.
// Called with mu held.
func (s *Server) issueAccess(g *grant, now time.Time) (string, *accessToken) {
	if s.opts.OneAccessTokenPerGrant {
		for _, old := range g.access {
			old.revoked = true
		}
	}
	v := tokenValue("at", g)
	a := &accessToken{g: g, n: g.n, value: v}
	if s.opts.Lifetime > 0 {
		a.expiry = now.Add(s.opts.Lifetime)
	}
	s.access[v] = a
	g.access = append(g.access, a)
	return v, a
}

// issueRefresh makes the refresh token of g's pair number g.n, valid from
// now. Called with mu held.
func (s *Server) issueRefresh(g *grant, now time.Time) (string, *refreshToken) {
	r := &refreshToken{g: g, n: g.n}
	if s.opts.RefreshLifetime > 0 {
		r.expiry = now.Add(s.opts.RefreshLifetime)
	}
	v := tokenValue("rt", g) + s.opts.RefreshTokenSuffix
	s.refresh[v] = r
	g.refresh = v
	return v, r
}

func tokenValue(kind string, g *grant) string {
	var b [8]byte
	rand.Read(b[:]) // never fails
	return fmt.Sprintf("%s-%d-%d-%s", kind, g.id, g.n, hex.EncodeToString(b[:]))
}

// RevokeAccessTokens makes the API reject every access token issued so far,
// before its expiry, as if they had expired early. Refresh tokens stay valid,
// so a client recovers with one refresh per grant.
func (s *Server) RevokeAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.access {
		a.revoked = true
	}
}

// RevokeGrants revokes every grant so far, as when the user revokes the
// application: every access and refresh token issued is rejected, and only
// a new login ([Server.Token]) helps.
func (s *Server) RevokeGrants() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.grants {
		g.revoked = true
	}
}

// Revoke revokes one token, as RFC 7009 does: an access token alone, or
// the whole grant of a refresh token. It reports whether the server issued
// the token. It is what the revocation endpoint ([Server.RevocationURL])
// does, without a request: Stats do not count it.
func (s *Server) Revoke(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoke(token)
}

// revoke is Revoke, for Revoke and the revocation endpoint. Called with mu
// held.
func (s *Server) revoke(token string) bool {
	if a, ok := s.access[token]; ok {
		a.revoked = true
		return true
	}
	if r, ok := s.refresh[token]; ok {
		r.g.revoked = true
		return true
	}
	return false
}

// Current returns the token that a client of token's grant holds if it
// followed every answer of the server: the newest access token issued to
// the grant, with its expiry, and the newest refresh token (with
// RotateNever and RotateSame, the login's; none if the grant has none), in
// the form [Server.Token] returns them. token is any access or refresh
// token the grant was issued, spent or not. Current returns nil if the server did not issue token or
// its grant was revoked. A test compares it with what its client stored.
func (s *Server) Current(token string) *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	var g *grant
	if a, ok := s.access[token]; ok {
		g = a.g
	} else if r, ok := s.refresh[token]; ok {
		g = r.g
	}
	if g == nil || g.revoked {
		return nil
	}
	a := g.access[len(g.access)-1]
	tok := &oauth2.Token{AccessToken: a.value, TokenType: "Bearer", RefreshToken: g.refresh}
	if !a.expiry.IsZero() {
		tok.Expiry = a.expiry
		tok.ExpiresIn = s.expiresIn()
	}
	return tok
}

// RefuseRefreshTokens makes the token endpoint refuse every refresh token
// issued so far that is still live, from now on, with the OAuth error code
// and the error_description given, in the Options.Errors style: a provider's
// documented answer to an expired refresh token ("invalid_grant",
// "Refresh token has expired or is invalid."), or to one it does not
// accept for another reason ("invalid_request", "Missing refresh
// token."). The status is that of the code (400; 401 for invalid_client).
// Access tokens stay valid, and so do the tokens of later logins; a spent
// refresh token is still a reuse. It panics if code is empty.
func (s *Server) RefuseRefreshTokens(code, description string) {
	if code == "" {
		panic("refreshtest: RefuseRefreshTokens without an error code")
	}
	e := &oauthError{code: code, desc: description}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refresh {
		if r.spent.IsZero() && !r.g.revoked {
			r.refused = e
		}
	}
}

// SetFaults replaces the faults injected into token and revocation requests
// from now on, and starts the count of Faults.Rate again. Requests already
// waiting out a Latency keep the faults they arrived with. It panics if f is
// invalid.
func (s *Server) SetFaults(f Faults) {
	if err := f.validate(); err != nil {
		panic("refreshtest: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.faultDebt = 0
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// wait sleeps for d in real time. It reports false if the server is closing.
func (s *Server) wait(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.closing:
		return false
	}
}
