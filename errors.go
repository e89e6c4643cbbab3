package refresh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/oauthkit/refresh/internal/redact"
	"golang.org/x/oauth2"
)

// ErrReauthRequired means the key's refresh token is gone or was rejected by
// the authorization server (OAuth error "invalid_grant", whatever the HTTP
// status). Refreshing again cannot help: the user must log in again, and the
// program must hand the new token to [Engine.SetToken]. Until then the engine
// makes no token-endpoint call for that key.
var ErrReauthRequired = errors.New("refresh: re-authentication required")

// ErrClientConfig means the token endpoint rejected the client rather than
// the token: OAuth errors "invalid_client", "unauthorized_client",
// "unsupported_grant_type" or "invalid_scope"; a 401, 403, 404, 405 or a
// redirect without an OAuth error code (wrong URL); or a configuration this
// package refuses (an http:// URL, say). The errors of [Revoker.Revoke] wrap
// it too when the revocation endpoint refuses the client so.
// The refresh token is not sent again until the key gets a new token; fix
// the configuration.
var ErrClientConfig = errors.New("refresh: token endpoint rejected the client configuration")

// ErrInvalidToken means a token cannot be sent: its value (or its type)
// contains a character that is not allowed in an HTTP header, such as CR, LF
// or NUL. The request is not sent.
var ErrInvalidToken = errors.New("refresh: token is not valid in an HTTP header")

// ErrClosed is wrapped by the errors of an [Engine] used after
// [Engine.Close] for anything that needs the store or the token endpoint.
var ErrClosed = errors.New("refresh: engine closed")

// ErrNotSaved is wrapped by the errors [Engine.Close] returns for keys whose
// newest token could not be saved to the store.
var ErrNotSaved = errors.New("refresh: the newest token could not be saved; it is lost when the process exits")

// ErrNoRevocation is wrapped by the error of [Revoker.Revoke] when the
// endpoint cannot revoke tokens at all, such as a [FormEndpoint] without a
// RevocationURL: nothing was sent, and trying again cannot help. A caller
// that revokes where it can (a logout) skips revocation then, rather than
// fail.
var ErrNoRevocation = errors.New("refresh: the endpoint cannot revoke tokens (no revocation URL)")

// Error describes a failed refresh, or a failed revocation ([Revoker]). It
// never holds a token or a secret, nor the raw response body of the token
// or revocation endpoint.
//
// Use [errors.Is] with [ErrReauthRequired] to learn whether the user must log
// in again, and [errors.As] with *Error for the details.
type Error struct {
	// Key is the token key whose refresh or revocation failed; an
	// endpoint's own errors have none until the engine sets it.
	Key string
	// StatusCode is the token (or revocation) endpoint's HTTP status, or
	// 0 if no response came back (network error, timeout) or the failure
	// was not the endpoint's.
	StatusCode int
	// Code is the OAuth "error" code of the response (RFC 6749 §5.2), such
	// as "invalid_grant"; empty if the response had none.
	Code string
	// Description is the response's "error_description", stripped of
	// control characters, shortened, and with any token value it contained
	// replaced by a fingerprint.
	Description string
	// URI is the response's "error_uri".
	URI string
	// RetryAfter is the delay the response's Retry-After header asked
	// for, capped at 10 seconds; 0 if none.
	RetryAfter time.Duration
	// BodySnippet is a short excerpt of an error response that carried no
	// OAuth error (an HTML page, say), with markup, control characters and
	// known secrets removed. It is not part of the Error() string.
	BodySnippet string
	// Err is the underlying cause: [ErrReauthRequired], a network or store
	// error, or nil.
	Err error

	temporary     bool
	malformedCode bool // the server's code was dropped (see Error.clean)
	revocation    bool // of a revocation: classified by revocationError, not classify
}

// Error returns a message that starts with "refresh:".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("refresh: key ")
	b.WriteString(strconv.Quote(e.Key))
	endpoint, failed := "token endpoint", "refresh failed"
	if e.revocation {
		endpoint, failed = "revocation endpoint", "revocation failed"
	}
	switch {
	case e.StatusCode != 0 || e.Code != "":
		b.WriteString(": ")
		b.WriteString(endpoint)
		b.WriteString(" answered")
		if e.StatusCode != 0 {
			b.WriteString(" HTTP ")
			b.WriteString(strconv.Itoa(e.StatusCode))
		}
		if e.Code != "" {
			b.WriteString(" ")
			b.WriteString(e.Code)
		}
		if e.Description != "" {
			b.WriteString(": ")
			b.WriteString(e.Description)
		}
		if e.Err != nil {
			b.WriteString(" (")
			b.WriteString(strings.TrimPrefix(e.Err.Error(), "refresh: "))
			b.WriteString(")")
		}
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "refresh: "))
	default:
		b.WriteString(": ")
		b.WriteString(failed)
	}
	return b.String()
}

// Unwrap returns e.Err.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed with the same
// refresh token: the endpoint was unreachable, timed out, or answered
// 408, 429 or 5xx without an OAuth error code. The engine has already tried
// a few times when it returns such an error.
func (e *Error) Temporary() bool { return e.temporary }

// temporaryStatus reports whether an HTTP status without an OAuth error code
// is worth another attempt later.
func temporaryStatus(code int) bool {
	return code == 408 || code == 429 || code >= 500 && code <= 599
}

// Fingerprint returns a short, stable, non-reversible identifier of a token
// value (the first 8 hex digits of its SHA-256), for logs and debugging. It
// returns "" for "".
func Fingerprint(token string) string {
	return redact.Fingerprint(token)
}

// Limits on what an [Error] keeps of a server's answer.
const (
	maxDescription = 500
	maxCode        = 64 // the registered codes are at most 25 bytes
	maxURI         = 256
	maxErrText     = 500 // the text of an error from a store or an endpoint
)

// errMalformedCode replaces an OAuth error code that is not one: outside
// RFC 6749's character set, or too long.
var errMalformedCode = errors.New("token endpoint sent a malformed OAuth error code")

// clean makes every field of x that came from a server or user code safe to
// print: the code is checked (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E)
// and dropped if it is not one or holds a secret, the description and the snippet lose their
// control characters and length, the URI must be a URI and loses its query
// and fragment, and every encoding of every secret is redacted from all of
// them and from the text of the cause, which is kept for errors.Is only.
func (x *Error) clean(secrets ...string) {
	if x.Code != "" && (!validCode(x.Code) || redactSecrets(x.Code, secrets) != x.Code) {
		x.Code = ""
		x.malformedCode = true
	}
	x.Description = sanitizeDescription(x.Description, secrets...)
	x.BodySnippet = cleanText(x.BodySnippet, maxDescription, secrets...)
	x.URI = cleanURI(x.URI, secrets...)
	x.Err = cleanErr(x.Err, secrets...)
}

func validCode(code string) bool {
	if len(code) > maxCode {
		return false
	}
	for i := 0; i < len(code); i++ {
		if c := code[i]; c < 0x20 || c == '"' || c == '\\' || c > 0x7e {
			return false
		}
	}
	return true
}

// cleanURI keeps an error_uri only if it is made of the characters RFC 6749
// allows (%x21 / %x23-5B / %x5D-7E), without its query and fragment (where a
// token echoed by the server would be), and redacted.
func cleanURI(u string, secrets ...string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if len(u) > maxURI {
		return ""
	}
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= 0x20 || c == '"' || c == '\\' || c > 0x7e {
			return ""
		}
	}
	return redactSecrets(u, secrets)
}

// sanitizeDescription makes a server's error_description safe to print: no
// control characters, bounded length, and no token value in any encoding
// (servers have been seen echoing the refresh token they reject).
func sanitizeDescription(s string, secrets ...string) string {
	return cleanText(s, maxDescription, secrets...)
}

// cleanText returns s without control characters and other non-printables,
// its white space collapsed, cut to max bytes, with every known secret
// redacted in every encoding (see internal/redact).
func cleanText(s string, max int, secrets ...string) string {
	return redact.Field(s, max, redact.New(secrets...).WithFingerprints())
}

// redactSecrets replaces every form of each secret in s with its
// fingerprint.
func redactSecrets(s string, secrets []string) string {
	return redact.New(secrets...).WithFingerprints().String(s)
}

// cleanError carries an error from user code (a store, an endpoint, the
// network) whose text may hold anything. Its message is cleaned once (see
// cleanText); it answers errors.Is for the whole chain of the original, but
// does not hand the original out, so nothing can print its raw text.
type cleanError struct {
	msg  string
	orig error
}

func (c *cleanError) Error() string        { return c.msg }
func (c *cleanError) Is(target error) bool { return errors.Is(c.orig, target) }

// cleanErr wraps err in a cleanError, unless it is nil or one already.
func cleanErr(err error, secrets ...string) error {
	switch err.(type) {
	case nil, *cleanError:
		return err
	}
	return &cleanError{msg: cleanText(err.Error(), maxErrText, secrets...), orig: err}
}

// isNetError reports whether err is a network failure or a timeout: worth
// another attempt with the same refresh token.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// classify turns an endpoint's error into an *Error for key: which failures
// need a new login, which are the client's configuration, which are
// temporary (see the documentation of ErrReauthRequired, ErrClientConfig and
// Error.Temporary). Every field is cleaned of base's tokens (see
// Error.clean).
func classify(key string, err error, base *oauth2.Token) *Error {
	var x *Error
	if errors.As(err, &x) {
		c := *x
		x = &c
	} else {
		x = &Error{Err: err}
	}
	x.Key = key
	netErr := x.StatusCode == 0 && isNetError(x.Err)
	x.clean(tokenSecrets(base)...)
	if x.revocation {
		return x // the token endpoint's table below is not a revocation's
	}
	if x.Err == nil {
		x.Err = refusal(x)
	}
	x.temporary = x.Code == "" && !x.malformedCode && !errors.Is(x, ErrReauthRequired) && !errors.Is(x, ErrClientConfig) &&
		!errors.Is(x, ErrPanic) && (x.temporary || temporaryStatus(x.StatusCode) || netErr)
	return x
}

// errRedirect is the error of a token endpoint that answers with a redirect.
var errRedirect = fmt.Errorf("%w: the token endpoint redirects; redirects are not followed", ErrClientConfig)

// refusal returns the error that a refusal of the token endpoint wraps, or
// nil if it is none that classify knows. A redirect means a wrong URL,
// whatever its body says; then the OAuth error code decides, then the
// status.
func refusal(x *Error) error {
	switch {
	case x.StatusCode >= 300 && x.StatusCode <= 399:
		return errRedirect
	case x.Code == "invalid_grant":
		return ErrReauthRequired
	case clientCode(x.Code):
		return ErrClientConfig
	case x.Code != "":
		return nil // invalid_request and others: not retried, no latch of their own
	case x.malformedCode:
		return errMalformedCode // an error, but not one we know: never retried
	case x.StatusCode == http.StatusBadRequest:
		// A 400 without an OAuth code is what some servers (WSO2's HTML
		// error page) send for an expired refresh token; it will not be
		// sent again either way.
		return ErrReauthRequired
	case x.StatusCode == http.StatusUnauthorized, x.StatusCode == http.StatusForbidden,
		x.StatusCode == http.StatusNotFound, x.StatusCode == http.StatusMethodNotAllowed:
		return ErrClientConfig // the client is refused, or the URL is wrong
	}
	return nil
}

// clientCode reports whether an OAuth error code refuses the client rather
// than the token: a configuration to fix (see ErrClientConfig).
func clientCode(code string) bool {
	switch code {
	case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
		return true
	}
	return false
}
