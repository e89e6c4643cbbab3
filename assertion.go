package refresh

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/oauthkit/refresh/internal/jose"
)

// jwtBearer is the client_assertion_type of a JWT (RFC 7523 §2.2).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a built-in assertion is valid: long
// enough for a slow token endpoint and a skewed clock, short enough that
// a captured one is soon worthless (servers refuse replays only while
// they remember the jti).
const assertionLifetime = 60 * time.Second

// JWTOptions are the options of [PrivateKeyJWT]. The zero value is valid.
type JWTOptions struct {
	// KeyID is sent as the assertion header's "kid", for servers that
	// hold several keys of the client (a JWKS). Optional.
	KeyID string
	// PSS signs with an RSA key by PS256 instead of RS256 (FAPI 2.0 wants
	// PS256 or ES256). Optional; refused for an ECDSA key.
	PSS bool
	// NotBefore adds an "nbf" claim equal to "iat", for servers that
	// require one. Optional.
	NotBefore bool
}

// PrivateKeyJWT returns a [FormEndpoint].Assertion that authenticates the
// client clientID with key (RFC 7523 §2.2, OpenID Connect's
// private_key_jwt): an RSA key of at least 2048 bits, signed RS256 (PS256
// with opts.PSS), or an ECDSA P-256 key, signed ES256. key may live in an
// HSM or a KMS: only its Sign method is called, once per token request.
// opts may be nil.
//
// audience is the assertion's "aud": the token endpoint URL, or the
// issuer identifier where the server's documentation asks for that. Each
// assertion has iss and sub clientID, a new 128-bit random jti, iat now
// and exp a minute later.
func PrivateKeyJWT(clientID, audience string, key crypto.Signer, opts *JWTOptions) (func(ctx context.Context) (string, error), error) {
	if opts == nil {
		opts = &JWTOptions{}
	}
	alg := ""
	if opts.PSS {
		alg = jose.PS256
	}
	s, err := jose.NewSigner(key, alg)
	if err != nil {
		return nil, errors.New("refresh: PrivateKeyJWT: " + err.Error())
	}
	return jwtAssertion(s, clientID, audience, opts)
}

// ClientSecretJWT returns a [FormEndpoint].Assertion that authenticates
// the client clientID with an HS256 assertion keyed by its client secret
// (RFC 7523 §2.2, OpenID Connect's client_secret_jwt): the secret never
// crosses the network. audience and the claims are as for
// [PrivateKeyJWT]. Leave FormEndpoint.ClientSecret empty.
func ClientSecretJWT(clientID, audience, secret string) (func(ctx context.Context) (string, error), error) {
	s, err := jose.NewHMAC([]byte(secret))
	if err != nil {
		return nil, errors.New("refresh: ClientSecretJWT: the client secret is empty")
	}
	return jwtAssertion(s, clientID, audience, &JWTOptions{})
}

// assertionClaims are the claims of RFC 7523 §3.
type assertionClaims struct {
	Iss string `json:"iss"`
	Sub string `json:"sub"`
	Aud string `json:"aud"`
	Jti string `json:"jti"`
	Iat int64  `json:"iat"`
	Nbf int64  `json:"nbf,omitempty"`
	Exp int64  `json:"exp"`
}

func jwtAssertion(s jose.Signer, clientID, audience string, opts *JWTOptions) (func(context.Context) (string, error), error) {
	switch {
	case clientID == "":
		return nil, errors.New("refresh: a client assertion needs the client ID")
	case audience == "":
		return nil, errors.New("refresh: a client assertion needs an audience (the token endpoint URL)")
	}
	var header map[string]any
	if opts.KeyID != "" {
		header = map[string]any{"kid": opts.KeyID}
	}
	nbf := opts.NotBefore
	return func(ctx context.Context) (string, error) {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		var jti [16]byte
		rand.Read(jti[:]) // never fails (crypto/rand)
		now := time.Now().Unix()
		c := assertionClaims{Iss: clientID, Sub: clientID, Aud: audience, Jti: base64.RawURLEncoding.EncodeToString(jti[:]),
			Iat: now, Exp: now + int64(assertionLifetime/time.Second)}
		if nbf {
			c.Nbf = now
		}
		return jose.Sign(s, header, c)
	}, nil
}

// checkAssertion refuses an Assertion combined with another client
// authentication: RFC 6749 §2.3 allows one method per request.
func (f *FormEndpoint) checkAssertion() error {
	switch {
	case f.Assertion == nil:
		return nil
	case f.ClientSecret != "":
		return errors.New("FormEndpoint.Assertion and ClientSecret are two client authentications; set one (ClientSecretJWT takes the secret)")
	case f.Auth == AuthBasic || f.Auth == AuthBasicRaw:
		return errors.New("FormEndpoint.Assertion goes in the body; Auth must not be AuthBasic or AuthBasicRaw")
	}
	return nil
}

// assertion calls f.Assertion: a failure, a panic or an empty answer is an
// *assertionError, and nothing is sent.
func (f *FormEndpoint) assertion(ctx context.Context) (a string, err error) {
	defer func() {
		if err != nil {
			a, err = "", &assertionError{cause: err}
		}
	}()
	defer recovered(&err, "FormEndpoint.Assertion")
	a, err = f.Assertion(ctx)
	if err == nil && a == "" {
		err = errors.New("FormEndpoint.Assertion returned an empty assertion")
	}
	return a, err
}

// assertionError is a client assertion that could not be made. That is the
// client's configuration (a key the signer refuses, a bug, a panic):
// errors.Is takes it for ErrClientConfig. Unless a remote signer timed out
// or could not be reached: nothing was sent, so trying again is safe, and
// it may succeed.
type assertionError struct{ cause error }

func (e *assertionError) Error() string {
	return "the client assertion could not be made: " + e.cause.Error()
}

func (e *assertionError) Unwrap() error { return e.cause }

func (e *assertionError) Is(target error) bool {
	return target == ErrClientConfig && !e.temporary()
}

func (e *assertionError) temporary() bool {
	return isNetError(e.cause) || errors.Is(e.cause, context.Canceled)
}

// requestFailed is the *Error of a request newRequest could not build,
// what it is in words ("token request"): nothing was sent.
func requestFailed(err error, what string, revocation bool) *Error {
	var a *assertionError
	if !errors.As(err, &a) {
		return &Error{Err: errors.New("cannot build the " + what), revocation: revocation}
	}
	x := &Error{Err: a, temporary: a.temporary(), revocation: revocation}
	x.clean() // the cause is user code's: its text is cleaned as a store's is
	return x
}
