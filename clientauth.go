package refresh

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// ClientAuth is how a confidential client authenticates to the token
// endpoint (and to the revocation endpoint: see FormEndpoint.RevocationURL).
// There is no automatic choice: trying one style and then the other sends
// the refresh token twice.
type ClientAuth int

const (
	// AuthInBody sends client_id and client_secret as form parameters
	// (gw2.me, 2BA).
	AuthInBody ClientAuth = iota + 1
	// AuthBasic sends them in an HTTP Basic Authorization header, each
	// form-urlencoded before base64 as RFC 6749 §2.3.1 requires (WSO2).
	AuthBasic
	// AuthBasicRaw is AuthBasic without the urlencoding, for servers that
	// do not decode the credentials (gw2.me).
	AuthBasicRaw
)

// newRequest builds the form POST of f to target: form, the client's
// identification or authentication as f.Auth or f.Assertion say, and
// f.Header. Refresh and Revoke both send it, so a server sees one client,
// authenticated one way. form gains client_id and client_secret or
// client_assertion where they go in the body. The assertion is returned,
// a secret to redact from errors; an error is an *assertionError if f's
// Assertion failed.
func (f *FormEndpoint) newRequest(ctx context.Context, target string, form url.Values) (*http.Request, string, error) {
	var assertion string
	if f.Assertion != nil {
		a, err := f.assertion(ctx)
		if err != nil {
			return nil, "", err
		}
		assertion = a
		form.Set("client_assertion_type", jwtBearer)
		form.Set("client_assertion", a)
	}
	basic := f.ClientSecret != "" && f.Auth != AuthInBody
	if !basic {
		// Public clients identify themselves; AuthInBody clients also
		// authenticate here. Never both here and in a header.
		if f.ClientID != "" {
			form.Set("client_id", f.ClientID)
		}
		if f.ClientSecret != "" {
			form.Set("client_secret", f.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	copyHeader(req.Header, f.Header)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		id, secret := f.ClientID, f.ClientSecret
		if f.Auth == AuthBasic {
			id, secret = url.QueryEscape(id), url.QueryEscape(secret)
		}
		req.SetBasicAuth(id, secret)
	}
	return req, assertion, nil
}
