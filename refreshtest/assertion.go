package refreshtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/oauthkit/refresh/internal/jose"
)

// jwtBearer is the client_assertion_type of a JWT (RFC 7523 §2.2).
const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits on a client assertion's times, on the server's clock: exp at most
// maxAssertionLife ahead (a long-lived assertion is a long-lived
// credential), iat and nbf at most assertionSkew in the future.
const (
	maxAssertionLife = 5 * time.Minute
	assertionSkew    = 5 * time.Second
)

// clientKeyOK reports whether k can verify a client's assertions.
func clientKeyOK(k any) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return k.Curve == elliptic.P256()
	}
	return false
}

// assertionAuth reports whether the client authenticates with a JWT.
func (s *Server) assertionAuth() bool {
	return !s.opts.Public && (s.opts.Auth == AuthPrivateKeyJWT || s.opts.Auth == AuthClientSecretJWT)
}

// jtiSet remembers the jti of every accepted assertion until it expires:
// a replay within its lifetime is refused, and an expired one fails its
// exp anyway. Guarded by Server.mu.
type jtiSet struct {
	exp  map[string]time.Time
	keep int // prune expired entries when exp grows past it
}

// add records jti, valid until exp, and reports whether it is new.
func (j *jtiSet) add(jti string, exp, now time.Time) bool {
	if _, seen := j.exp[jti]; seen {
		return false
	}
	if j.exp == nil {
		j.exp = map[string]time.Time{}
	}
	if len(j.exp) >= j.keep {
		for k, e := range j.exp {
			if !now.Before(e) {
				delete(j.exp, k)
			}
		}
		j.keep = max(64, 2*len(j.exp)) // amortized: a sweep per doubling
	}
	j.exp[jti] = exp
	return true
}

// assertionClaims are the claims the server reads (RFC 7523 §3). Times are
// NumericDates: seconds, possibly fractional.
type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Jti string          `json:"jti"`
	Exp *float64        `json:"exp"`
	Iat *float64        `json:"iat"`
	Nbf *float64        `json:"nbf"`
}

// authenticateAssertion checks a client authentication by assertion, for
// the token and the revocation endpoint, and counts it in Stats.
func (s *Server) authenticateAssertion(r *http.Request, form url.Values) *oauthError {
	c, e := s.readAssertion(r, form)
	now := s.opts.Now()
	if e == nil {
		e = s.checkClaims(c, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	replay := e == nil && !s.jtis.add(c.Jti, seconds(*c.Exp), now)
	if replay {
		s.stats.AssertionReplays++
		e = refuse("invalid_client", "The assertion's jti was used before.")
	}
	if e != nil {
		s.stats.AssertionsRejected++
		return e
	}
	s.stats.Assertions++
	return nil
}

// readAssertion finds the assertion of the request, the only client
// authentication in it, and returns its claims if its signature verifies.
func (s *Server) readAssertion(r *http.Request, form url.Values) (assertionClaims, *oauthError) {
	var c assertionClaims
	a := form.Get("client_assertion")
	switch {
	case a == "":
		return c, refuse("invalid_client", "This client authenticates with a JWT in client_assertion, not with a secret.")
	case len(r.Header.Values("Authorization")) > 0 || form.Has("client_secret"):
		return c, refuse("invalid_client", "A client secret besides the assertion: use one client authentication (RFC 6749 §2.3).")
	case form.Get("client_assertion_type") != jwtBearer:
		return c, refuse("invalid_client", "client_assertion_type must be %s.", jwtBearer)
	case form.Has("client_id") && form.Get("client_id") != s.opts.ClientID:
		return c, refuse("invalid_client", "Unknown client_id.")
	}
	var key any = s.opts.ClientKey
	if s.opts.Auth == AuthClientSecretJWT {
		key = []byte(s.opts.ClientSecret)
	}
	_, claims, err := jose.Verify(a, key)
	if err != nil {
		// jose's errors never hold the token.
		return c, refuse("invalid_client", "The assertion does not verify: %v.", err)
	}
	if json.Unmarshal(claims, &c) != nil {
		return c, refuse("invalid_client", "The assertion's claims have the wrong types.")
	}
	return c, nil
}

// checkClaims checks what the claims say of the client, the audience and
// the time (RFC 7523 §3).
func (s *Server) checkClaims(c assertionClaims, now time.Time) *oauthError {
	switch {
	case !dates(c.Exp, c.Iat, c.Nbf):
		return refuse("invalid_client", "The assertion's exp, iat or nbf is not a time.")
	case c.Iss != s.opts.ClientID || c.Sub != s.opts.ClientID:
		return refuse("invalid_client", "The assertion's iss and sub must be the client_id.")
	case !s.audience(c.Aud):
		return refuse("invalid_client", "The assertion's aud must be %s or %s.", s.TokenURL, s.Issuer)
	case c.Jti == "":
		return refuse("invalid_client", "The assertion has no jti.")
	case c.Exp == nil:
		return refuse("invalid_client", "The assertion has no exp.")
	case !now.Before(seconds(*c.Exp)):
		return refuse("invalid_client", "The assertion has expired.")
	case seconds(*c.Exp).Sub(now) > maxAssertionLife:
		return refuse("invalid_client", "The assertion expires more than %v from now.", maxAssertionLife)
	case c.Iat != nil && seconds(*c.Iat).Sub(now) > assertionSkew:
		return refuse("invalid_client", "The assertion's iat is in the future.")
	case c.Iat != nil && seconds(*c.Exp).Sub(seconds(*c.Iat)) > maxAssertionLife:
		return refuse("invalid_client", "The assertion lives longer than %v.", maxAssertionLife)
	case c.Nbf != nil && seconds(*c.Nbf).Sub(now) > assertionSkew:
		return refuse("invalid_client", "The assertion is not valid yet (nbf).")
	}
	return nil
}

// audience reports whether aud, a string or an array of strings, names
// this server: its token endpoint or its issuer.
func (s *Server) audience(aud json.RawMessage) bool {
	var one string
	if json.Unmarshal(aud, &one) == nil {
		return one == s.TokenURL || one == s.Issuer
	}
	var many []string
	if json.Unmarshal(aud, &many) != nil {
		return false
	}
	return slices.Contains(many, s.TokenURL) || slices.Contains(many, s.Issuer)
}

// dates reports whether each of ds is absent or a NumericDate before the
// year 5000, which seconds can convert.
func dates(ds ...*float64) bool {
	for _, d := range ds {
		if d != nil && (*d < 0 || *d > 95617584000) {
			return false
		}
	}
	return true
}

// seconds is the time of a NumericDate (see dates).
func seconds(n float64) time.Time {
	sec, frac := math.Modf(n)
	return time.Unix(int64(sec), int64(frac*1e9))
}
