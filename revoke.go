package refresh

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/oauthkit/refresh/internal/tokenwire"
	"golang.org/x/oauth2"
)

// Revoke implements [Revoker]: it posts tok's refresh token (or its access
// token, if it has none) to RevocationURL as RFC 7009 §2.1 says, with
// token_type_hint, the client authentication and the headers of a refresh,
// once, through a client that never follows redirects. ctx bounds the
// request; it is not retried.
//
// A 2xx answer means revoked, whatever its body: RFC 7009 §2.2 answers 200
// for a token the server does not know, too. The error is temporary for 503
// whatever its body (RFC 7009 §2.2.1); for 408, 429 and other 5xx without
// an OAuth error code, or with server_error or temporarily_unavailable; and
// for network failures and timeouts. It wraps [ErrClientConfig] for what
// means so at the token endpoint: invalid_client, unauthorized_client and
// the like; 401, 403, 404 or 405 without a code; a redirect. Any other
// answer, such as unsupported_token_type (a server that cannot revoke
// access tokens), is a final *Error with its Code or status.
//
// Without a RevocationURL it sends nothing and returns an *Error wrapping
// [ErrNoRevocation].
func (f *FormEndpoint) Revoke(ctx context.Context, tok *oauth2.Token) error {
	if f.RevocationURL == "" {
		return &Error{Err: ErrNoRevocation, revocation: true}
	}
	if err := f.validate(); err != nil {
		return &Error{Err: configError(err.Error()), revocation: true}
	}
	if tok == nil || tok.RefreshToken == "" && tok.AccessToken == "" {
		return &Error{Err: errors.New("no token to revoke"), revocation: true}
	}
	form := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
	if tok.RefreshToken == "" {
		form = url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}
	}
	req, assertion, err := f.newRequest(ctx, f.RevocationURL, form)
	if err != nil {
		return requestFailed(err, "revocation request", true)
	}
	secrets := append(tokenSecrets(tok), f.ClientSecret, assertion)
	if x := revocation(httpClient(f.HTTPClient), req, secrets); x != nil {
		x.revocation = true
		x.clean(secrets...)
		revocationError(x)
		return x
	}
	return nil
}

// revocation posts req once and returns nil if the server revoked, else
// an *Error with what it answered, unclassified; the snippet of an error
// page is redacted of secrets, the other fields not yet.
func revocation(client *http.Client, req *http.Request, secrets []string) *Error {
	resp, err := client.Do(req)
	if err != nil {
		return &Error{Err: err, temporary: isNetError(err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// Its body says nothing (RFC 7009 §2.2), and one that never
		// ends must not hold up a logout: not read.
		resp.Body.Close()
		return nil
	}
	body, rerr := tokenwire.ReadBody(resp.Body)
	resp.Body.Close()
	x := &Error{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		// A redirect's body is not the server's answer.
	case rerr != nil:
		x.Err = rerr
	default:
		_, oe, _ := tokenwire.Parse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
		if oe != nil {
			x.Code, x.Description, x.URI = oe.Code, oe.Description, oe.URI
		} else {
			x.BodySnippet = tokenwire.Snippet(body, secrets...)
		}
	}
	return x
}

// revocationError sets whether the cleaned failure x of a revocation is
// temporary and what it wraps (see FormEndpoint.Revoke). Unlike a refresh,
// a revocation may be sent again at no risk, so only what the server
// pinned on the client is final.
func revocationError(x *Error) {
	status := x.StatusCode
	switch {
	case status == 0:
		// No answer: the network's or the context's verdict stands.
	case status >= 300 && status <= 399:
		x.Err = errRevocationRedirect
	case status == http.StatusServiceUnavailable:
		x.temporary = true // RFC 7009 §2.2.1: the token still exists; retry later
	case clientCode(x.Code):
		x.Err = errRevocationClient
	case x.Code != "" && x.Code != "server_error" && x.Code != "temporarily_unavailable":
		// unsupported_token_type, invalid_request…: the Code tells.
	case x.malformedCode:
		x.Err = errMalformedCode // an error, but not one we know
	case temporaryStatus(status):
		x.temporary = true
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusNotFound, status == http.StatusMethodNotAllowed:
		x.Err = errRevocationClient // the client is refused, or the URL is wrong
	}
}

// configError is a refusal of the client's configuration in a revocation's
// words: errors.Is takes it for ErrClientConfig, whose message speaks of
// the token endpoint.
type configError string

func (e configError) Error() string      { return string(e) }
func (configError) Is(target error) bool { return target == ErrClientConfig }

var (
	errRevocationClient   = configError("the revocation endpoint rejected the client configuration")
	errRevocationRedirect = configError("the revocation endpoint redirects; redirects are not followed")
)
