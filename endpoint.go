package refresh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/oauthkit/refresh/internal/extra"
	"github.com/oauthkit/refresh/internal/tokenwire"
	"golang.org/x/oauth2"
)

// An Endpoint exchanges a refresh token for a new token: the seam through
// which the engine talks to a token endpoint.
//
// Refresh is called at most once at a time per key, with a token whose
// RefreshToken is not empty, and with a context that carries the refresh
// timeout. It must send that refresh token at most once: after a server may
// have seen it, trying it again (for example with another client
// authentication style) is a reuse that rotating servers punish by revoking
// the whole token family.
//
// The returned token replaces the old one. If its RefreshToken is empty the
// engine keeps the old refresh token. A rejection should be returned as an
// *[Error] with Code set (Code "invalid_grant" means the user must log in
// again) or wrap [ErrReauthRequired].
type Endpoint interface {
	Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)
}

// A Revoker is an [Endpoint] that can revoke a token at the authorization
// server (RFC 7009), for [Engine.Logout]. [*FormEndpoint] is one; it can
// revoke only when its RevocationURL is set, so the type alone does not
// tell: Revoke returns an error wrapping [ErrNoRevocation] when the
// endpoint cannot revoke, at once and without a request, and a caller
// then skips revocation. [*JSONEndpoint] is not a Revoker.
type Revoker interface {
	Endpoint

	// Revoke asks the server to revoke tok: its refresh token, or its
	// access token if it has none. Servers revoke the refresh token's
	// whole grant, access tokens included, where they can. A token the
	// server does not know counts as revoked (RFC 7009 §2.2). A failure
	// is an *Error; Temporary reports whether trying again may help.
	// Revoke returns an error wrapping ErrNoRevocation when the endpoint
	// cannot revoke.
	Revoke(ctx context.Context, tok *oauth2.Token) error
}

// EndpointFunc adapts a function to the [Endpoint] interface.
type EndpointFunc func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error)

// Refresh calls f(ctx, tok).
func (f EndpointFunc) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	return f(ctx, tok)
}

// FormEndpoint is the standard refresh_token grant of RFC 6749 §6: a form
// POST of grant_type=refresh_token and the refresh token.
//
// It never follows redirects (they would carry the refresh token and the
// client secret elsewhere), refuses http:// URLs except to loopback hosts
// unless AllowHTTP is set, reads at most 1 MiB of the response, and sends the
// refresh token once per call. With a RevocationURL it revokes tokens too
// ([FormEndpoint.Revoke]), with the same care.
type FormEndpoint struct {
	// TokenURL is the token endpoint. Required.
	TokenURL string
	// RevocationURL is the token revocation endpoint (RFC 7009), for
	// Revoke. Optional: empty means the endpoint cannot revoke, and
	// Revoke returns an error wrapping ErrNoRevocation. It is checked as
	// TokenURL is, and gets the same client authentication and Header.
	RevocationURL string
	// ClientID identifies the client. Optional for servers that do not
	// need it.
	ClientID string
	// ClientSecret authenticates a confidential client. Optional: without
	// it the client is public and sends only client_id in the body.
	ClientSecret string
	// Auth says where ClientID and ClientSecret go. Required when
	// ClientSecret is set.
	Auth ClientAuth
	// Assertion authenticates the client with a JWT instead of a secret
	// (RFC 7523 §2.2): see [PrivateKeyJWT] and [ClientSecretJWT]. It is
	// called for every token and revocation request, concurrently for
	// different keys, and must return a new assertion each time, which is
	// sent as client_assertion with client_assertion_type jwt-bearer,
	// beside client_id. Optional; not with ClientSecret or Basic Auth. An
	// error or a panic sends nothing and wraps ErrClientConfig, unless it
	// is a timeout or network error.
	Assertion func(ctx context.Context) (string, error)
	// Scope is sent as the scope parameter (WSO2 wants "PRODUCTION").
	// Optional; it must not be wider than what was granted.
	Scope string
	// Params are extra form parameters, such as resource or audience.
	// Optional. They cannot replace the parameters above.
	Params url.Values
	// Header holds extra request headers. Optional.
	Header http.Header
	// HTTPClient sends the request. Optional: nil means a client over
	// http.DefaultTransport. Its redirect policy is replaced.
	HTTPClient *http.Client
	// AllowHTTP permits an http:// TokenURL or RevocationURL to a host
	// that is not loopback. Optional; the refresh token and the secret
	// then cross the network in clear text. Config.OAuth2 has no such option: set
	// Config.Endpoint to a FormEndpoint with the same settings instead.
	AllowHTTP bool
	// KeepExtra names the members of the token response to keep in the
	// new token's Extra, beyond id_token, scope and refresh_expires_in,
	// which are always kept; [KeepAllExtra] ("*") keeps every one.
	// Optional. Kept members are saved in the store with the token, and a
	// refresh response without id_token or scope keeps the previous ones.
	//
	// Only JSON scalars are kept, as Extra returns them: string, float64
	// or bool (a form-encoded response's values are strings). At most 32
	// members and 64 KiB are kept, a string value of at most 32 KiB;
	// anything else (null, an object or array, an oversized value) is
	// dropped, never an error, as the token it comes with may be the only
	// valid one. Names that the token holds in fields of its own
	// (access_token, token_type, refresh_token, expires_in, expiry) are
	// refused.
	KeepExtra []string
}

// Refresh implements [Endpoint].
func (f *FormEndpoint) Refresh(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
	if err := f.validate(); err != nil {
		return nil, &Error{Err: fmt.Errorf("%w: %w", ErrClientConfig, err)}
	}
	form := url.Values{}
	for k, vs := range f.Params {
		form[k] = vs
	}
	form.Set("grant_type", "refresh_token")
	form.Set("refresh_token", tok.RefreshToken)
	if f.Scope != "" {
		form.Set("scope", f.Scope)
	}
	req, assertion, err := f.newRequest(ctx, f.TokenURL, form)
	if err != nil {
		return nil, requestFailed(err, "token request", false)
	}
	return send(httpClient(f.HTTPClient), req, keepNames(f.KeepExtra), tok.RefreshToken, tok.AccessToken, f.ClientSecret, assertion)
}

func (f *FormEndpoint) validate() error {
	if err := checkURL("token endpoint URL", f.TokenURL, f.AllowHTTP, "set FormEndpoint.AllowHTTP"); err != nil {
		return err
	}
	if f.RevocationURL != "" {
		if err := checkURL("revocation endpoint URL", f.RevocationURL, f.AllowHTTP, "set FormEndpoint.AllowHTTP"); err != nil {
			return err
		}
	}
	if f.ClientSecret != "" && (f.Auth < AuthInBody || f.Auth > AuthBasicRaw) {
		return errors.New("FormEndpoint.Auth must be AuthInBody, AuthBasic or AuthBasicRaw when a ClientSecret is set")
	}
	if err := f.checkAssertion(); err != nil {
		return err
	}
	if err := checkKeepExtra("FormEndpoint", f.KeepExtra); err != nil {
		return err
	}
	return checkClient(f.HTTPClient)
}

// send posts req once and interprets the answer, keeping the extra members
// keep names. secrets (the tokens and the client secret of the request) are
// redacted from anything kept of the response, in every encoding.
func send(client *http.Client, req *http.Request, keep []string, secrets ...string) (*oauth2.Token, error) {
	tok, x := exchange(client, req, keep, secrets)
	if x != nil {
		x.clean(secrets...)
		return nil, x
	}
	return tok, nil
}

func exchange(client *http.Client, req *http.Request, keep, secrets []string) (*oauth2.Token, *Error) {
	resp, err := client.Do(req)
	if err != nil {
		// url.Error names the method and URL, never the body. It is
		// classified here, while the cause can still be examined.
		return nil, &Error{Err: err, temporary: isNetError(err)}
	}
	body, rerr := tokenwire.ReadBody(resp.Body)
	resp.Body.Close()
	x := &Error{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	success := resp.StatusCode >= 200 && resp.StatusCode <= 299
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return nil, x // a redirect: its body is not the server's answer (see refusal)
	}
	if rerr != nil {
		if success {
			x.Err = fmt.Errorf("%w: %w", ErrReauthRequired, rerr)
		} else {
			x.Err = rerr
		}
		return nil, x
	}
	tok, oe, perr := tokenwire.Parse(resp.StatusCode, resp.Header.Get("Content-Type"), body, keep...)
	switch {
	case oe != nil:
		x.Code, x.Description, x.URI = oe.Code, oe.Description, oe.URI
		return nil, x
	case perr != nil:
		// The server answered 2xx, so it has probably spent the refresh
		// token, but its replacement cannot be read: sending the old one
		// again would be a reuse.
		x.Err = fmt.Errorf("%w: %w", ErrReauthRequired, perr)
		return nil, x
	case tok == nil:
		x.BodySnippet = tokenwire.Snippet(body, secrets...)
		return nil, x
	}
	t := &oauth2.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, RefreshToken: tok.RefreshToken, ExpiresIn: tok.ExpiresIn}
	t = extra.With(t, tok.Extra)
	if tok.ExpiresIn > 0 {
		t.Expiry = time.Now().Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	return t, nil
}

// maxRetryAfter caps how long a Retry-After header may delay a retry.
const maxRetryAfter = 10 * time.Second

// retryAfter parses a Retry-After value (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := time.ParseDuration(strings.TrimSpace(v) + "s"); err == nil {
		d = secs
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return max(0, min(d, maxRetryAfter))
}

// copyHeader copies src into dst keeping the names as the user wrote them:
// HTTP/1.1 sends a map key as it is, and some token endpoints match header
// names case-sensitively ("partnerId").
func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
}

// checkURL refuses URLs that would send a token in clear text across a
// network. what names the URL in the error; optIn is the advice for an
// http:// URL to a host that is not loopback: how the configuration in use
// allows it.
func checkURL(what, raw string, allowHTTP bool, optIn string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New(what + " is not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowHTTP || isLoopback(u.Hostname()) {
			return nil
		}
		return errors.New(what + " uses http:// to a host that is not loopback; use https or " + optIn)
	}
	return errors.New(what + " must be https")
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkClient(c *http.Client) error {
	if c != nil {
		if _, ours := c.Transport.(*Transport); ours {
			return errors.New("the token endpoint's HTTPClient must not use refresh.Transport")
		}
	}
	return nil
}

// httpClient returns a copy of c (or of a default client) that never
// follows redirects.
func httpClient(c *http.Client) *http.Client {
	var cc http.Client
	if c != nil {
		cc = *c
	}
	cc.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect would carry the refresh token elsewhere
	}
	return &cc
}

// oauth2HTTPAdvice is how a Config.OAuth2 user reaches a token endpoint
// over http:// to a host that is not loopback. Config has no AllowHTTP of
// its own: sending the refresh token and the client secret in clear text
// takes an explicit FormEndpoint, which holds every setting Config.OAuth2
// and Config.HTTPClient give.
const oauth2HTTPAdvice = "set Config.Endpoint instead of Config.OAuth2, to a *refresh.FormEndpoint " +
	"with AllowHTTP and the same TokenURL, ClientID, ClientSecret, Auth and HTTPClient"

// oauth2Endpoint turns an x/oauth2 configuration into a FormEndpoint. It
// keeps every extra member of the response (within the limits), as
// x/oauth2's own refresh does, so that code written for its tokens' Extra
// works.
func oauth2Endpoint(conf *oauth2.Config, hc *http.Client) (*FormEndpoint, error) {
	var auth ClientAuth
	switch {
	case conf == nil:
		return nil, errors.New("refresh: Config needs OAuth2 or Endpoint")
	case conf.Endpoint.TokenURL == "":
		return nil, errors.New("refresh: Config.OAuth2.Endpoint.TokenURL is empty")
	}
	if err := checkURL("token endpoint URL", conf.Endpoint.TokenURL, false, oauth2HTTPAdvice); err != nil {
		return nil, errors.New("refresh: Config.OAuth2.Endpoint.TokenURL: " + err.Error())
	}
	switch {
	case conf.Endpoint.AuthStyle == oauth2.AuthStyleInParams:
		auth = AuthInBody
	case conf.Endpoint.AuthStyle == oauth2.AuthStyleInHeader:
		auth = AuthBasic
	default:
		return nil, errors.New("refresh: Config.OAuth2.Endpoint.AuthStyle must be oauth2.AuthStyleInParams or oauth2.AuthStyleInHeader " +
			"(auto-detection re-sends the refresh token after a failure, which rotating servers treat as reuse)")
	}
	return &FormEndpoint{TokenURL: conf.Endpoint.TokenURL, ClientID: conf.ClientID, ClientSecret: conf.ClientSecret, Auth: auth, HTTPClient: hc,
		KeepExtra: []string{KeepAllExtra}}, nil
}
