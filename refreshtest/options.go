package refreshtest

import (
	"crypto"
	"fmt"
	"net/http"
	"time"
)

// Rotation is what a refresh does to the refresh token it was given.
type Rotation int

const (
	// RotateAlways spends the refresh token and issues a new one with
	// every refresh (RFC 9700 §4.14.2; 2BA, WSO2's default, ory/fosite).
	// Presenting a spent refresh token again is a reuse.
	RotateAlways Rotation = iota
	// RotateNever keeps the refresh token valid and answers refreshes
	// without a refresh_token member, as Google does. There is never a
	// reuse.
	RotateNever
	// RotateGrace rotates, but a reuse within Options.Grace of the refresh
	// token's first use, while the token it was replaced by is still unused,
	// is answered with exactly the answer of the first use: the same new
	// access and refresh tokens (Dex's reuse interval).
	RotateGrace
	// RotateGraceNew rotates, but a reuse within Options.Grace of the
	// refresh token's first use is answered with another new pair; the pair
	// of the first use stays valid (Auth0's reuse interval).
	RotateGraceNew
	// RotateSame keeps the refresh token valid, as RotateNever does, but
	// sends it back as the refresh_token member of every answer (WSO2
	// with RenewRefreshTokenForRefreshGrant=false; gw2.me), which a client
	// must treat as no rotation. There is never a reuse.
	RotateSame
)

func (r Rotation) String() string {
	switch r {
	case RotateAlways:
		return "RotateAlways"
	case RotateNever:
		return "RotateNever"
	case RotateGrace:
		return "RotateGrace"
	case RotateGraceNew:
		return "RotateGraceNew"
	case RotateSame:
		return "RotateSame"
	}
	return fmt.Sprintf("Rotation(%d)", int(r))
}

// ErrorStyle is how the token endpoint answers a request it refuses.
type ErrorStyle int

const (
	// ErrorsRFC answers as RFC 6749 §5.2 says: a JSON body with "error" and
	// "error_description", status 400, or 401 for invalid_client (with a
	// WWW-Authenticate: Basic challenge when the client sent an
	// Authorization header).
	ErrorsRFC ErrorStyle = iota
	// Errors500 answers every OAuth error, invalid_grant included, with
	// status 500 and the same JSON body, as gw2.me does: a client must
	// classify by the body, not the status.
	Errors500
	// ErrorsHTML answers with the status of ErrorsRFC and an HTML page
	// without an OAuth error code, as some WSO2 error paths do: a style
	// element, the status, the error description, and, as such pages do,
	// the refresh token it was sent and the client's id and secret, so a
	// test can check that none of them reaches an error message or a log.
	ErrorsHTML
)

func (e ErrorStyle) String() string {
	switch e {
	case ErrorsRFC:
		return "ErrorsRFC"
	case Errors500:
		return "Errors500"
	case ErrorsHTML:
		return "ErrorsHTML"
	}
	return fmt.Sprintf("ErrorStyle(%d)", int(e))
}

// ClientAuth is how a confidential client must authenticate to the token
// endpoint. Exactly one style is accepted; a request that uses two at once is
// refused with invalid_request (RFC 6749 §2.3, §5.2).
type ClientAuth int

const (
	// AuthBody wants client_id and client_secret as form parameters and no
	// Authorization header (gw2.me, 2BA; oauth2.AuthStyleInParams).
	AuthBody ClientAuth = iota
	// AuthBasic wants HTTP Basic credentials, each form-urlencoded before
	// base64 as RFC 6749 §2.3.1 requires; the server decodes them (WSO2;
	// oauth2.AuthStyleInHeader).
	AuthBasic
	// AuthBasicRaw wants HTTP Basic credentials that are not urlencoded;
	// the server compares them as they are (gw2.me's Basic support).
	AuthBasicRaw
	// AuthPrivateKeyJWT wants a JWT client assertion (RFC 7523 §2.2,
	// private_key_jwt) signed by the key whose public half is
	// Options.ClientKey, and no secret; see [Stats].AssertionsRejected for
	// what it checks. Server.Config cannot speak it.
	AuthPrivateKeyJWT
	// AuthClientSecretJWT is AuthPrivateKeyJWT with an HS256 assertion
	// keyed by the client secret (client_secret_jwt), which is not sent.
	AuthClientSecretJWT
)

func (a ClientAuth) String() string {
	switch a {
	case AuthBody:
		return "AuthBody"
	case AuthBasic:
		return "AuthBasic"
	case AuthBasicRaw:
		return "AuthBasicRaw"
	case AuthPrivateKeyJWT:
		return "AuthPrivateKeyJWT"
	case AuthClientSecretJWT:
		return "AuthClientSecretJWT"
	}
	return fmt.Sprintf("ClientAuth(%d)", int(a))
}

// Default client credentials. The secret holds characters that form
// encoding changes, so a client that skips the urlencoding AuthBasic
// requires (or applies it for AuthBasicRaw) is refused.
const (
	DefaultClientID     = "refreshtest-client"
	DefaultClientSecret = "refreshtest-secret/+= &"
)

// Options configure a [Server]. Every field is optional: the zero Options
// are a strict RFC 6749 server with a confidential client authenticating in
// the body, always rotating refresh tokens whose reuse revokes their whole
// grant, and one-hour access tokens.
type Options struct {
	// Lifetime is the lifetime of access tokens, sent as expires_in.
	// Optional: zero means one hour; negative means the tokens never expire
	// and expires_in is omitted. It is rounded up to whole seconds.
	Lifetime time.Duration

	// RefreshLifetime is the lifetime of refresh tokens: an expired one is
	// refused with invalid_grant. Optional: zero or negative means they
	// never expire. With RotateNever a refresh token keeps the expiry it
	// was issued with (WSO2's RefreshTokenValidityPeriod).
	RefreshLifetime time.Duration

	// Rotation is what a refresh does to the refresh token. Optional: the
	// zero value is RotateAlways.
	Rotation Rotation

	// Grace is the reuse interval of RotateGrace and RotateGraceNew.
	// Optional: zero means 30 seconds (Okta's default grace period).
	Grace time.Duration

	// LenientReuse makes a reuse outside any grace merely refused with
	// invalid_grant. Optional: by default a reuse also revokes every token
	// of the grant, the newest included (RFC 9700 §4.14.2).
	LenientReuse bool

	// OneAccessTokenPerGrant makes every new access token invalidate the
	// previous ones of its grant (gw2.me keeps one access token per client
	// and user). Optional: by default an access token stays valid until it
	// expires or is revoked.
	OneAccessTokenPerGrant bool

	// ConcurrentLoserInvalidRequest refuses a refresh token request with
	// 400 invalid_request ("please retry") when another request with the
	// same refresh token is still being handled, as ory/fosite answers the
	// loser of two concurrent refreshes; the first request is granted.
	// Retrying with the same refresh token after the first one was granted
	// is then a reuse. Concurrency is decided when a request arrives, so
	// use Faults.Latency to keep the first one in flight.
	ConcurrentLoserInvalidRequest bool

	// Errors is how refused token requests are answered. Optional: the
	// zero value is ErrorsRFC.
	Errors ErrorStyle

	// ClientID and ClientSecret are the client's credentials, checked
	// exactly; a mismatch is refused with invalid_client. Optional: empty
	// means DefaultClientID and DefaultClientSecret.
	ClientID, ClientSecret string

	// Auth is where the credentials must be. Optional: the zero value is
	// AuthBody.
	Auth ClientAuth

	// ClientKey is the client's public key for AuthPrivateKeyJWT: an
	// *rsa.PublicKey of at least 2048 bits or an *ecdsa.PublicKey on
	// P-256. Required with AuthPrivateKeyJWT, ignored otherwise.
	ClientKey crypto.PublicKey

	// Public makes the client public (RFC 6749 §2.1): it has no secret and
	// must send only client_id in the body; any secret or Authorization
	// header is refused. ClientSecret and Auth are then ignored.
	Public bool

	// Scope, if set, must be sent as the scope parameter of every refresh,
	// exactly (WSO2 wants "PRODUCTION"), and is returned in every token
	// response of a login's grant. Optional: empty means no scope was
	// granted, and a refresh that asks for one is refused with
	// invalid_scope. (The other grants ask for theirs: see GrantOptions.)
	Scope string

	// Extra, if set, adds members to token responses, such as an OpenID
	// Connect id_token: Extra(grant, pair) is added to the response that
	// issues that pair of that grant (see [TokenEvent]; with RotateNever,
	// the pair of the new access token), and Extra(grant, 0) is the Extra
	// of the token [Server.Token] (or ClientCredentialsToken) returns. A
	// nil or empty map adds nothing; a member the response has already
	// (access_token, token_type, expires_in, refresh_token, scope if the
	// grant has one, issued_token_type) is not replaced. A RotateGrace replay repeats the first answer,
	// members included. It is called with the server's lock held and must
	// not call the Server's methods. Optional.
	Extra func(grant, pair int) map[string]any

	// ClientCredentials configures the client_credentials grant (RFC 6749
	// §4.4), which the token endpoint takes from a confidential client in
	// the form dialect. Optional: the zero value takes it.
	ClientCredentials GrantOptions

	// TokenExchange configures the token exchange grant (RFC 8693), which
	// the token endpoint takes in the form dialect. Optional: the zero
	// value takes it.
	TokenExchange GrantOptions

	// TokenPath is the path of the token endpoint on its server. Optional:
	// empty means "/token".
	TokenPath string

	// RevocationPath is the path of the revocation endpoint (RFC 7009) on
	// the server of the token endpoint. Optional: empty means "/revoke".
	RevocationPath string

	// RevokeRefreshTokensOnly makes the revocation endpoint refuse access
	// tokens with unsupported_token_type (RFC 7009 §2.2.1), as a server
	// that can revoke only refresh tokens does: an access token it issued,
	// or an unknown token with token_type_hint access_token. Optional.
	RevokeRefreshTokensOnly bool

	// JSON switches the token endpoint to a JSON dialect. Optional: nil
	// means the standard form POST of RFC 6749 §6. With a JSON dialect the
	// client credentials, Auth, Public and Scope are not checked.
	JSON *JSONDialect

	// Strict refuses, with invalid_request, what RFC 6749 tells servers
	// to tolerate but the seed APIs' documents rule out, so that a test
	// can pin a client's exact wire format: a form parameter the dialect
	// does not define (§3.2 says to ignore it); Basic credentials holding
	// a character that form encoding escapes (with AuthBasic, where the
	// server would decode them); with a JSON dialect, an Authorization
	// header, a member besides JSONDialect.Field, and a header whose name
	// differs from one of JSONDialect.Header's only in case, '-' or '_'
	// ("partner-id" for "partnerId"), other than that header itself. The
	// protected API then wants the scheme spelled "Bearer" and one space.
	// Optional.
	Strict bool

	// TokenType is the token_type of every token response. Optional:
	// empty means "bearer", as .NET OWIN servers (2BA) send it.
	TokenType string

	// RefreshTokenSuffix is appended to every refresh token the server
	// issues, to make them hold characters that form encoding changes
	// (2BA's hold "+", "/", "=" and "&"): a client that fails to encode
	// them presents a token the server does not know. Optional.
	RefreshTokenSuffix string

	// BareUnauthorized makes the protected API answer 401 without a
	// WWW-Authenticate header (gw2.me), so that a client must refresh on
	// the status alone. Optional: by default a 401 carries a Bearer
	// challenge (RFC 6750 §3).
	BareUnauthorized bool

	// Faults are injected into token requests from the start; see also
	// [Server.SetFaults]. Optional.
	Faults Faults

	// OnTokenRequest, if set, is called once for every request to the
	// token endpoint (each one Stats.TokenRequests counts, except those
	// abandoned by Close) with what the server did with it, after the
	// server decided and before the answer is written. It runs on the request's goroutine, outside the server's
	// lock, so it may call the Server's methods; calls for concurrent
	// requests may overlap and finish out of order (TokenEvent.Time
	// orders them). The answer waits for it to return. Optional.
	OnTokenRequest func(TokenEvent)

	// Now is the server's clock, for token expiry and grace windows.
	// Optional: nil means time.Now. Token expiries the server returns are
	// on this clock too. Latency and other delays use real time.
	Now func() time.Time
}

// JSONDialect is a token endpoint that takes a JSON body rather than a form,
// like the partner API of seed 003:
//
//	&refreshtest.JSONDialect{
//		Field:  "refreshToken",
//		Header: http.Header{"partnerId": {"4711"}, "grantType": {"refresh_token"}},
//	}
//
// with Options.TokenPath "/v1/auth/token". Its zero value matches the zero
// value of the refresh package's JSONEndpoint: a body {"refresh_token": "…"}
// and no required header.
type JSONDialect struct {
	// Field is the member of the JSON object that carries the refresh
	// token. Optional: empty means "refresh_token". A request without it,
	// or with an empty or non-string value, is refused with invalid_request
	// ("Missing refresh token.").
	Field string

	// Header holds headers every request must carry, each with exactly
	// these values; names match in any case, as in HTTP. A request that
	// lacks one is refused with invalid_request. Optional.
	Header http.Header
}

const (
	defaultLifetime   = time.Hour
	defaultGrace      = 30 * time.Second
	defaultTokenPath  = "/token"
	defaultRevocation = "/revoke"
	defaultJSONField  = "refresh_token"
	defaultTokenType  = "bearer"
)

// normalize checks o and fills in its defaults.
func (o Options) normalize() (Options, error) {
	switch {
	case o.Rotation < RotateAlways || o.Rotation > RotateSame:
		return o, fmt.Errorf("Options.Rotation %v is unknown", o.Rotation)
	case o.Errors < ErrorsRFC || o.Errors > ErrorsHTML:
		return o, fmt.Errorf("Options.Errors %v is unknown", o.Errors)
	case o.Auth < AuthBody || o.Auth > AuthClientSecretJWT:
		return o, fmt.Errorf("Options.Auth %v is unknown", o.Auth)
	case o.Auth == AuthPrivateKeyJWT && !o.Public && !clientKeyOK(o.ClientKey):
		return o, fmt.Errorf("Options.ClientKey %T is no RSA key of 2048 bits or more, nor ECDSA P-256, as AuthPrivateKeyJWT needs", o.ClientKey)
	case o.Grace < 0:
		return o, fmt.Errorf("Options.Grace is negative (%v)", o.Grace)
	}
	if err := o.Faults.validate(); err != nil {
		return o, err
	}
	switch {
	case o.Lifetime == 0:
		o.Lifetime = defaultLifetime
	case o.Lifetime > 0:
		o.Lifetime = (o.Lifetime + time.Second - 1).Truncate(time.Second)
	}
	if o.Grace == 0 {
		o.Grace = defaultGrace
	}
	if o.ClientID == "" {
		o.ClientID = DefaultClientID
	}
	switch {
	case o.Public:
		o.ClientSecret = ""
	case o.ClientSecret == "":
		o.ClientSecret = DefaultClientSecret
	}
	if o.TokenPath == "" {
		o.TokenPath = defaultTokenPath
	}
	if o.TokenType == "" {
		o.TokenType = defaultTokenType
	}
	if o.TokenPath[0] != '/' {
		return o, fmt.Errorf("Options.TokenPath %q does not start with /", o.TokenPath)
	}
	if o.RevocationPath == "" {
		o.RevocationPath = defaultRevocation
	}
	switch {
	case o.RevocationPath[0] != '/':
		return o, fmt.Errorf("Options.RevocationPath %q does not start with /", o.RevocationPath)
	case o.RevocationPath == o.TokenPath:
		return o, fmt.Errorf("Options.RevocationPath is Options.TokenPath (%q)", o.TokenPath)
	}
	if o.JSON != nil {
		j := *o.JSON
		if j.Field == "" {
			j.Field = defaultJSONField
		}
		j.Header = j.Header.Clone()
		o.JSON = &j
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
