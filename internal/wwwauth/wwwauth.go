package wwwauth

import (
	"iter"
	"strings"
)

// The limits on what is parsed; the package doc explains them.
const (
	maxBytes      = 8 << 10 // bytes of all header values together, one more for each line break
	maxChallenges = 64      // challenges in a header
	maxParams     = 64      // auth-params of all challenges together
)

// limits are the caps that one parse honours: the constants above, or
// others in tests.
type limits struct {
	bytes, challenges, params int
}

var capped = limits{maxBytes, maxChallenges, maxParams}

// Challenge is one authentication challenge.
type Challenge struct {
	Scheme  string            // as sent, e.g. "Bearer"; compare with strings.EqualFold
	Params  map[string]string // auth-param names lower-cased; values unquoted (quoted-pair escapes resolved); nil if none
	Token68 string            // set when the challenge carries a token68 instead of params
}

// Parse parses every challenge in all the given header values (a response may
// carry several WWW-Authenticate header lines, and one line may hold several
// comma-separated challenges), within the limits given in the package doc.
// It never panics and never loops forever; malformed parts are skipped as
// well as possible and the rest is still returned.
//
// If an auth-param name occurs more than once in a challenge, the first value
// is kept. Auth-params that follow a token68 challenge, or precede any
// challenge in a header value, are dropped. As the grammar demands, a lone
// "name=" right after a scheme is a token68, so "Bearer a=, error=x" yields
// Token68 "a=" and no params.
func Parse(values []string) []Challenge {
	return parse(values, capped)
}

func parse(values []string, lim limits) []Challenge {
	var cs []Challenge
	for e := range elements(values, lim) {
		if e.scheme != "" {
			cs = append(cs, Challenge{Scheme: e.scheme, Token68: e.token68})
		} else {
			cs[len(cs)-1].addParam(e)
		}
	}
	return cs
}

// ErrorCode returns the value of the "error" auth-param of the first
// challenge that has one (any scheme: Bearer, DPoP, ...), and whether any
// challenge had one. It agrees with [Parse], and stops reading at the first
// error auth-param.
func ErrorCode(values []string) (code string, ok bool) {
	return errorCode(values, capped)
}

func errorCode(values []string, lim limits) (code string, ok bool) {
	for e := range elements(values, lim) {
		// Params come challenge by challenge, so the first "error" is
		// the first challenge's that has one, and the one Parse keeps.
		if e.scheme == "" && strings.EqualFold(e.name, "error") {
			return e.text(), true
		}
	}
	return "", false
}

// addParam records an auth-param, keeping the first value of a repeated
// name; the value of a repeated one is never unquoted.
func (c *Challenge) addParam(e element) {
	name := strings.ToLower(e.name)
	if _, dup := c.Params[name]; dup {
		return
	}
	if c.Params == nil {
		c.Params = make(map[string]string)
	}
	c.Params[name] = e.text()
}

// An element is one list element of a header: the start of a challenge
// (scheme set), or an auth-param of the challenge before it (name set).
type element struct {
	scheme, token68 string // a challenge
	name, value     string // an auth-param; value is raw (escapes not resolved) if quoted
	quoted          bool
}

// text returns the auth-param's value with quoted-pair escapes resolved.
func (e element) text() string {
	if !e.quoted || strings.IndexByte(e.value, '\\') < 0 {
		return e.value
	}
	b := make([]byte, 0, len(e.value))
	for i := 0; i < len(e.value); i++ {
		if e.value[i] == '\\' {
			i++
			if i == len(e.value) {
				break // a trailing backslash (unterminated string) is dropped
			}
		}
		b = append(b, e.value[i])
	}
	return string(b)
}

// elements yields the challenges of values and the auth-params that belong
// to them, in order, within lim. Orphan auth-params (before any challenge
// in a value, or after a token68) are not yielded.
func elements(values []string, lim limits) iter.Seq[element] {
	return func(yield func(element) bool) {
		sc := scanner{lim: lim, yield: yield}
		budget := lim.bytes
		for _, v := range values {
			if budget <= 0 {
				return
			}
			cut := len(v) >= budget
			if cut {
				v = v[:budget]
			}
			budget -= len(v) + 1
			if !sc.value(v, cut) {
				return
			}
		}
	}
}

// scanner walks the values of one header.
type scanner struct {
	lim        limits
	yield      func(element) bool
	challenges int  // challenges yielded so far
	params     int  // auth-params yielded so far
	orphans    bool // whether auth-params now are orphans (no challenge takes them)
}

// value yields the elements of the header value s. cut means the byte limit
// ends s: the header may go on, so an element that runs into the end of s
// is dropped. It returns false once yield or a limit ends the walk.
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
func (sc *scanner) value(s string, cut bool) bool {
	sc.orphans = true // params never carry over to a challenge in another value
	i := 0
	for {
		// Skip separators, including empty list elements (",,").
		for i < len(s) && (s[i] == ',' || isOWS(s[i])) {
			i++
		}
		if i >= len(s) {
			return true
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
		if k == len(s) && cut {
			return false // the token may go on, or an "=" follow
		}
		if k < len(s) && s[k] == '=' {
			name := s[i:j]
			val, quoted, open, next := paramValue(s, skipOWS(s, k+1))
			if open && cut {
				return false // the value may go on
			}
			i = next
			if !sc.param(name, val, quoted) {
				return false
			}
			continue
		}
		scheme, tok := s[i:j], ""
		i = k
		// A token68 may only follow the scheme after whitespace. It is
		// tried first because it can end in "=", which would otherwise
		// look like the start of an auth-param ("Negotiate abc==").
		if k > j {
			if t, next, ok := token68(s, k); ok {
				if next == len(s) && cut {
					// It may go on, or turn out to be an auth-param
					// ("Bearer realm" of "Bearer realm=x").
					sc.challenge(scheme, "")
					return false
				}
				tok, i = t, next
			}
		}
		if !sc.challenge(scheme, tok) {
			return false
		}
	}
}

// challenge yields a challenge, unless it would be one too many.
func (sc *scanner) challenge(scheme, token68 string) bool {
	if sc.challenges == sc.lim.challenges {
		return false
	}
	sc.challenges++
	sc.orphans = token68 != "" // a token68 challenge has no auth-params
	return sc.yield(element{scheme: scheme, token68: token68})
}

// param yields an auth-param of the current challenge, unless it is an
// orphan, malformed (an empty unquoted value, as in "error="), or one too
// many.
func (sc *scanner) param(name, value string, quoted bool) bool {
	if sc.orphans || !quoted && value == "" {
		return true
	}
	if sc.params == sc.lim.params {
		return false
	}
	sc.params++
	return sc.yield(element{name: name, value: value, quoted: quoted})
}

// paramValue parses the auth-param value starting at s[i]: its text (raw,
// escapes not resolved, if quoted), whether it is quoted, whether it runs
// into the end of s (so that a longer s could make it longer), and the index
// just past it.
//
// An unquoted value should be a token, but it is taken up to the next comma
// or whitespace so that values such as realm=https://example.com survive.
// An empty unquoted value (error=) is malformed; an empty quoted-string
// (error="") is a valid empty value.
func paramValue(s string, i int) (val string, quoted, open bool, next int) {
	if i < len(s) && s[i] == '"' {
		raw, closed, next := quotedString(s, i)
		return raw, true, !closed, next
	}
	j := i
	for j < len(s) && s[j] != ',' && !isOWS(s[j]) {
		j++
	}
	return s[i:j], false, j == len(s), j
}

// quotedString scans the quoted-string starting at s[i] == '"'. It returns
// the content with quoted-pair escapes not yet resolved (see
// [element.text]), whether the closing quote was found, and the index just
// past it. An unterminated string takes the rest of s. It allocates
// nothing and looks at each byte once.
func quotedString(s string, i int) (raw string, closed bool, next int) {
	start := i + 1
	for j := start; j < len(s); j++ {
		switch s[j] {
		case '"':
			return s[start:j], true, j + 1
		case '\\':
			j++ // the escaped byte, whatever it is
		}
	}
	return s[start:], false, len(s)
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
			_, _, i = quotedString(s, i)
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
