package tokenwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error [Parse] returns.
var ErrMalformed = errors.New("malformed token response")

// Token is a successful token response (RFC 6749 §5.1).
type Token struct {
	AccessToken  string
	TokenType    string // as sent; "" if missing or not a string
	RefreshToken string // "" if the response carries none
	ExpiresIn    int64  // seconds, > 0; 0 means unknown (missing, null, 0, negative, unparseable)
	// Extra holds the members that Parse was asked to keep, as
	// internal/extra normalizes them; nil if there are none.
	Extra map[string]any
}

// ErrorBody is an OAuth error response (RFC 6749 §5.2).
type ErrorBody struct{ Code, Description, URI string }

// Parse interprets a token endpoint's response.
//
//   - If the body holds an OAuth error ("error" member or parameter, a
//     non-empty string), it returns (nil, &ErrorBody{...}, nil) whatever the
//     status (servers send it with 200, 400, 401 or 500).
//   - Else, for a 2xx status, it returns the token, or an error wrapping
//     ErrMalformed if the body cannot be parsed, is not a JSON object / form,
//     lacks a non-empty string access_token, or has a refresh_token or
//     access_token of the wrong JSON type. Never a wrong token: when in
//     doubt, error. So a token holding control characters or invalid UTF-8,
//     and a form repeating a parameter, are errors too.
//   - Else (non-2xx without an OAuth error: HTML error pages, empty bodies,
//     garbage) it returns (nil, nil, nil); the caller classifies by status.
//
// The body is JSON if the media type is application/json or ends in +json,
// or if it starts with '{' (after a UTF-8 byte order mark and white space)
// whatever the Content-Type, as some servers label JSON text/plain or
// text/html. Otherwise it is a form if the media type is
// application/x-www-form-urlencoded or text/plain, and unreadable if not.
//
// keep names the members, beyond those of the token itself, to return in
// Token.Extra; "*" among them means every member. Only JSON scalars are
// kept (a form's values are strings), and what internal/extra does not
// keep is dropped (see extraMembers): an odd extra member never makes the
// response an error, as the token it comes with may be the only valid one.
//
// Error messages never contain any part of the body.
func Parse(status int, contentType string, body []byte, keep ...string) (*Token, *ErrorBody, error) {
	f, ex, err := decode(contentType, body, keep)
	if err == nil {
		if e := f.errorBody(); e != nil {
			return nil, e, nil
		}
	}
	if status < 200 || status > 299 {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	t, err := f.token()
	if err != nil {
		return nil, nil, err
	}
	t.Extra = ex
	return t, nil, nil
}

func malformed(problem string) error {
	return fmt.Errorf("%w: %s", ErrMalformed, problem)
}

// names are the members of a token response that Parse interprets.
var names = [...]string{
	"access_token", "token_type", "refresh_token", "expires_in",
	"error", "error_description", "error_uri",
}

// fields holds the interpreted members of a response, keyed by name.
// A missing member and a JSON null are both absent.
type fields map[string]value

// value is one member of a JSON object or one form parameter, reduced to
// what Parse needs to know about it.
type value struct {
	kind kind
	s    string // a string's value, or a number's JSON literal
}

type kind int

const (
	absent kind = iota
	str
	num
	other // a JSON bool, object or array
)

var bom = []byte("\uFEFF")

// decode returns the interpreted members of body and the extra members of
// keep.
func decode(contentType string, body []byte, keep []string) (fields, map[string]any, error) {
	rest := bytes.TrimPrefix(body, bom)
	skipped := len(body) - len(rest) // so that offsets refer to body
	trimmed := bytes.TrimLeft(rest, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, nil, malformed("empty body")
	}
	mt := mediaType(contentType)
	switch {
	case trimmed[0] == '{' || mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return decodeJSON(rest, skipped, keep)
	case mt == "application/x-www-form-urlencoded" || mt == "text/plain":
		return decodeForm(trimmed, keep)
	}
	return nil, nil, malformed("unsupported content type")
}

// mediaType returns the lower-cased media type of a Content-Type header, or
// "" if there is none. A bad parameter does not hide the media type before it.
func mediaType(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && err != mime.ErrInvalidMediaParameter {
		return ""
	}
	return mt
}

func decodeJSON(body []byte, skipped int, keep []string) (fields, map[string]any, error) {
	// A map rather than a struct, so that each member is interpreted on its
	// own (one odd member does not spoil the others) and names match exactly
	// (encoding/json matches struct fields case-insensitively).
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		// encoding/json's messages quote parts of the input; report the offset only.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, nil, malformed(fmt.Sprintf("JSON syntax error at offset %d", se.Offset+int64(skipped)))
		}
		return nil, nil, malformed("not a JSON object")
	}
	if m == nil { // the body was null
		return nil, nil, malformed("not a JSON object")
	}
	f := make(fields, len(names))
	for _, name := range names {
		raw, ok := m[name]
		if !ok {
			continue
		}
		switch raw[0] {
		case 'n': // null
		case '"':
			var s string
			json.Unmarshal(raw, &s) // cannot fail: raw is a valid JSON string
			f[name] = value{kind: str, s: s}
		case 't', 'f', '{', '[':
			f[name] = value{kind: other}
		default:
			f[name] = value{kind: num, s: string(raw)}
		}
	}
	return f, jsonExtra(m, keep), nil
}

func decodeForm(body []byte, keep []string) (fields, map[string]any, error) {
	// Trailing white space (text/plain bodies often end in a newline) would
	// otherwise become part of the last value.
	vs, err := url.ParseQuery(string(bytes.TrimSpace(body)))
	if err != nil {
		// ParseQuery's messages quote parts of the input.
		return nil, nil, malformed("invalid form encoding")
	}
	f := make(fields, len(names))
	for _, name := range names {
		switch v := vs[name]; len(v) {
		case 0:
		case 1:
			f[name] = value{kind: str, s: v[0]}
		default:
			// Which of two access tokens is the right one? Refuse to guess.
			return nil, nil, malformed("repeated parameter")
		}
	}
	return f, formExtra(vs, keep), nil
}

// str returns the named member if it is a string, and "" if not.
func (f fields) str(name string) string {
	if v := f[name]; v.kind == str {
		return v.s
	}
	return ""
}

func (f fields) errorBody() *ErrorBody {
	code := f.str("error")
	if code == "" {
		return nil
	}
	return &ErrorBody{Code: code, Description: f.str("error_description"), URI: f.str("error_uri")}
}

func (f fields) token() (*Token, error) {
	switch at := f["access_token"]; {
	case at.kind == absent:
		return nil, malformed("no access_token")
	case at.kind != str:
		return nil, malformed("access_token is not a string")
	case at.s == "":
		return nil, malformed("empty access_token")
	case !sendable(at.s):
		return nil, malformed("access_token holds invalid characters")
	}
	switch rt := f["refresh_token"]; {
	case rt.kind == absent:
	case rt.kind != str:
		return nil, malformed("refresh_token is not a string")
	case !sendable(rt.s):
		return nil, malformed("refresh_token holds invalid characters")
	}
	return &Token{
		AccessToken:  f.str("access_token"),
		TokenType:    f.str("token_type"),
		RefreshToken: f.str("refresh_token"),
		ExpiresIn:    f.expiresIn(),
	}, nil
}

// sendable reports whether s can be a token as issued. encoding/json turns
// invalid UTF-8 and lone surrogates into U+FFFD, which would make a token the
// server never issued, and a control character cannot travel in an
// Authorization header.
func sendable(s string) bool {
	for _, r := range s { // invalid UTF-8 decodes as utf8.RuneError too
		if r == utf8.RuneError || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// expiresIn interprets expires_in, which servers send as a JSON number or as
// a string holding one. Anything else, and any lifetime under one second,
// means unknown (0). Lifetimes are capped at math.MaxInt32 seconds (68 years)
// so that callers can turn them into a time.Duration without overflow.
func (f fields) expiresIn() int64 {
	v := f["expires_in"]
	if v.kind != str && v.kind != num {
		return 0
	}
	s := strings.TrimSpace(v.s)
	// Only JSON number syntax: ParseFloat would also take "NaN", "Inf",
	// "0x1p4" and "+1".
	if s == "" || s[0] != '-' && (s[0] < '0' || s[0] > '9') || !json.Valid([]byte(s)) {
		return 0
	}
	x, _ := strconv.ParseFloat(s, 64) // out of range gives ±Inf, handled below
	switch {
	case !(x >= 1):
		return 0
	case x >= math.MaxInt32:
		return math.MaxInt32
	}
	return int64(x) // x is positive: conversion truncates, which is floor
}
