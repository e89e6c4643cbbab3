// Package wwwauth parses HTTP WWW-Authenticate response headers
// (RFC 9110, Section 11.6.1).
//
// It exists so that the refresh transport can decide, from the
// WWW-Authenticate header of a 401 response, whether refreshing the access
// token can help. An RFC 6750 "invalid_token" error, or no error code at all,
// means the token was rejected and a fresh one may succeed. Errors such as
// "insufficient_scope", "invalid_request" or DPoP's "use_dpop_nonce" are not
// cured by a new token, so refreshing would only waste a round trip.
//
// The parser is deliberately tolerant: servers send headers that stray from
// the grammar, and a partial result is more useful than none. Malformed list
// elements are skipped and parsing resumes at the next comma.
package wwwauth

import "strings"

// Challenge is one authentication challenge.
type Challenge struct {
	Scheme  string            // as sent, e.g. "Bearer"; compare with strings.EqualFold
	Params  map[string]string // auth-param names lower-cased; values unquoted (quoted-pair escapes resolved); nil if none
	Token68 string            // set when the challenge carries a token68 instead of params
}

// Parse parses every challenge in all the given header values (a response may
// carry several WWW-Authenticate header lines, and one line may hold several
// comma-separated challenges). It never panics and never loops forever;
// malformed parts are skipped as well as possible and the rest is still
// returned.
//
// If an auth-param name occurs more than once in a challenge, the first value
// is kept. Auth-params that follow a token68 challenge, or precede any
// challenge in a header value, are dropped. As the grammar demands, a lone
// "name=" right after a scheme is a token68, so "Bearer a=, error=x" yields
// Token68 "a=" and no params.
func Parse(values []string) []Challenge {
	var cs []Challenge
	for _, v := range values {
		cs = parseValue(cs, v)
	}
	return cs
}

// ErrorCode returns the value of the "error" auth-param of the first
// challenge that has one (any scheme: Bearer, DPoP, ...), and whether any
// challenge had one.
func ErrorCode(values []string) (code string, ok bool) {
	for _, c := range Parse(values) {
		if code, ok := c.Params["error"]; ok {
			return code, true
		}
	}
	return "", false
}

// parseValue appends the challenges found in the header value s to cs.
//
// The grammar is
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// so challenges and their auth-params share one comma-separated list. Each
// list element is classified by what follows its leading token: "=" makes it
// an auth-param of the current challenge; anything else starts a new
// challenge. Every iteration consumes at least one byte, so the loop ends.
func parseValue(cs []Challenge, s string) []Challenge {
	cur := -1 // index in cs of the challenge that takes auth-params; -1 if none
	i := 0
	for {
		// Skip separators, including empty list elements (",,").
		for i < len(s) && (s[i] == ',' || isOWS(s[i])) {
			i++
		}
		if i >= len(s) {
			return cs
		}
		j := i
		for j < len(s) && isTchar(s[j]) {
			j++
		}
		if j == i {
			// Not a token: skip the malformed element.
			i = skipElement(s, i)
			continue
		}
		k := skipOWS(s, j)
		if k < len(s) && s[k] == '=' {
			name := s[i:j]
			val, ok, next := paramValue(s, skipOWS(s, k+1))
			i = next
			if cur >= 0 && ok {
				cs[cur].addParam(strings.ToLower(name), val)
			}
			continue
		}
		cs = append(cs, Challenge{Scheme: s[i:j]})
		cur = len(cs) - 1
		i = k
		// A token68 may only follow the scheme after whitespace. It is
		// tried first because it can end in "=", which would otherwise
		// look like the start of an auth-param ("Negotiate abc==").
		if k > j {
			if t, next, ok := token68(s, k); ok {
				cs[cur].Token68 = t
				cur = -1 // a token68 challenge has no auth-params
				i = next
			}
		}
	}
}

// addParam records an auth-param, keeping the first value of a repeated name.
func (c *Challenge) addParam(name, val string) {
	if _, dup := c.Params[name]; dup {
		return
	}
	if c.Params == nil {
		c.Params = make(map[string]string)
	}
	c.Params[name] = val
}

// paramValue parses the auth-param value starting at s[i]. It returns the
// value, whether there was one, and the index just past it.
//
// An unquoted value should be a token, but it is taken up to the next comma
// or whitespace so that values such as realm=https://example.com survive.
// An empty unquoted value (error=) is malformed and reported as absent; an
// empty quoted-string (error="") is a valid empty value.
func paramValue(s string, i int) (val string, ok bool, next int) {
	if i < len(s) && s[i] == '"' {
		val, next = quotedString(s, i)
		return val, true, next
	}
	j := i
	for j < len(s) && s[j] != ',' && !isOWS(s[j]) {
		j++
	}
	return s[i:j], j > i, j
}

// quotedString parses the quoted-string starting at s[i] == '"'. It returns
// the content with quoted-pair escapes resolved and the index just past the
// closing quote. An unterminated string takes the rest of s.
func quotedString(s string, i int) (val string, next int) {
	i++ // opening quote
	start := i
	var b []byte // unescaped content; nil until the first backslash
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			if b == nil {
				return s[start:i], i + 1
			}
			return string(b), i + 1
		case '\\':
			if b == nil {
				b = append(make([]byte, 0, len(s)-start), s[start:i]...)
			}
			if i+1 < len(s) { // a trailing backslash is dropped
				i++
				b = append(b, s[i])
			}
		default:
			if b != nil {
				b = append(b, c)
			}
		}
	}
	if b == nil {
		return s[start:], len(s)
	}
	return string(b), len(s)
}

// token68 reports whether a token68 starts at s[i] and is the whole list
// element, returning it and the index just past it and any trailing OWS.
//
//	token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func token68(s string, i int) (tok string, next int, ok bool) {
	j := i
	for j < len(s) && isToken68Char(s[j]) {
		j++
	}
	if j == i {
		return "", i, false
	}
	for j < len(s) && s[j] == '=' {
		j++
	}
	k := skipOWS(s, j)
	if k < len(s) && s[k] != ',' {
		return "", i, false // e.g. realm="x" or error=invalid_token
	}
	return s[i:j], k, true
}

// skipElement skips a malformed list element starting at s[i], stepping over
// quoted-strings so that a comma inside one does not end the element. It
// returns the index of the next comma, or len(s), and always advances.
func skipElement(s string, i int) int {
	for i < len(s) && s[i] != ',' {
		if s[i] == '"' {
			_, i = quotedString(s, i)
		} else {
			i++
		}
	}
	return i
}

func skipOWS(s string, i int) int {
	for i < len(s) && isOWS(s[i]) {
		i++
	}
	return i
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

// isTchar reports whether c is a token character (RFC 9110, Section 5.6.2).
func isTchar(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}
