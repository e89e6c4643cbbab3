package refresh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

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
// package refuses (an http:// URL, say).
// The refresh token is not sent again until the key gets a new token; fix
// the configuration.
var ErrClientConfig = errors.New("refresh: token endpoint rejected the client configuration")

// ErrInvalidToken means a token cannot be sent: its value (or its type)
// contains a character that is not allowed in an HTTP header, such as CR, LF
// or NUL. The request is not sent.
var ErrInvalidToken = errors.New("refresh: token is not valid in an HTTP header")

// Error describes a failed refresh. It never holds a token or a secret, nor
// the raw response body of the token endpoint.
//
// Use [errors.Is] with [ErrReauthRequired] to learn whether the user must log
// in again, and [errors.As] with *Error for the details.
type Error struct {
	// Key is the token key whose refresh failed.
	Key string
	// StatusCode is the token endpoint's HTTP status, or 0 if no response
	// came back (network error, timeout) or the failure was not the
	// endpoint's.
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

	temporary bool
}

// Error returns a message that starts with "refresh:".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("refresh: key ")
	b.WriteString(strconv.Quote(e.Key))
	switch {
	case e.StatusCode != 0 || e.Code != "":
		b.WriteString(": token endpoint answered")
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
		b.WriteString(": refresh failed")
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
	if token == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}

// maxDescription caps the error_description kept in an [Error].
const maxDescription = 500

// sanitizeDescription makes a server's error_description safe to print: no
// control characters, bounded length, and no token value (servers have been
// seen echoing the refresh token they reject).
func sanitizeDescription(s string, secrets ...string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[token "+Fingerprint(sec)+"]")
		}
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxDescription {
		cut := maxDescription
		for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// classify turns an endpoint's error into an *Error for key: which failures
// need a new login, which are the client's configuration, which are
// temporary. The response body decides first, then the status.
func classify(key string, err error, base *oauth2.Token) *Error {
	var x *Error
	var ne net.Error
	if errors.As(err, &x) {
		c := *x
		x = &c
	} else {
		x = &Error{Err: err}
	}
	x.Key = key
	x.Description = sanitizeDescription(x.Description, base.AccessToken, base.RefreshToken)
	if x.Err == nil {
		switch x.Code {
		case "invalid_grant":
			x.Err = ErrReauthRequired
		case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
			x.Err = ErrClientConfig
		case "":
			switch {
			case x.StatusCode == http.StatusBadRequest:
				// A 400 without an OAuth code is what some servers
				// (WSO2's HTML error page) send for an expired refresh
				// token; it will not be sent again either way.
				x.Err = ErrReauthRequired
			case x.StatusCode == http.StatusUnauthorized, x.StatusCode == http.StatusForbidden,
				x.StatusCode == http.StatusNotFound, x.StatusCode == http.StatusMethodNotAllowed,
				x.StatusCode >= 300 && x.StatusCode <= 399:
				// The client is refused, or the URL is wrong.
				x.Err = ErrClientConfig
			}
		}
	}
	x.temporary = x.Code == "" && !errors.Is(x, ErrReauthRequired) && !errors.Is(x, ErrClientConfig) &&
		(x.temporary || temporaryStatus(x.StatusCode) ||
			x.StatusCode == 0 && (errors.As(x.Err, &ne) || errors.Is(x.Err, context.DeadlineExceeded)))
	return x
}
