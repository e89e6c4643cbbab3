// Package tokenwire reads and interprets the HTTP responses of OAuth 2.0
// token endpoints (RFC 6749, Sections 5.1 and 5.2).
//
// Token endpoints in the wild stray from the specification: they send OAuth
// errors with status 200 or 500, expires_in as a string, JSON labelled
// text/plain, form-encoded bodies and HTML error pages. The package tolerates
// whatever it can read without guessing and refuses the rest: a response it
// cannot read with certainty yields an error, never a wrong token.
//
// No error message quotes the response body, because the body may hold
// tokens and error messages end up in logs. [Snippet] gives a redacted
// excerpt for diagnostics instead.
package tokenwire
