package refresh

import (
	"errors"
	"fmt"
	"strings"

	"github.com/oauthkit/refresh/internal/extra"
	"github.com/oauthkit/refresh/internal/tokenwire"
	"golang.org/x/oauth2"
)

// A token's extras (oauth2.Token.Extra) travel with it: through every copy
// the engine makes ([copyToken]), through Engine.Token, and through every
// store of this module. internal/extra says which: JSON scalars (string,
// float64, bool), at most 32 members and 64 KiB.

// KeepAllExtra, in the KeepExtra list of a [FormEndpoint] or a
// [JSONEndpoint], keeps every scalar member of the token response, as
// golang.org/x/oauth2 does, within the limits.
const KeepAllExtra = tokenwire.KeepAll

// carriedOver are the extras a refresh response may leave out to mean
// "unchanged": the scope (RFC 6749 §5.1: omitted when identical to the one
// requested) and the ID token (OpenID Connect Core §12.2: a refresh
// response need not carry one). Other extras, refresh_expires_in among
// them, describe the response they came in, and are not carried over.
var carriedOver = [...]string{"id_token", "scope"}

// carryOver returns a copy of nt, the token a refresh returned, with the
// extras of carriedOver that nt lacks taken from base, the token whose
// refresh token was sent, as the old refresh token is kept when the
// response has none.
func carryOver(nt, base *oauth2.Token) *oauth2.Token {
	m := extra.Of(nt)
	var from map[string]any
	for _, name := range carriedOver {
		if _, ok := m[name]; ok {
			continue
		}
		if from == nil {
			from = extra.Of(base)
		}
		if v, ok := from[name]; ok {
			if m == nil {
				m = make(map[string]any, len(carriedOver))
			}
			m[name] = v
		}
	}
	// Normalize again: the members taken from base must fit in the limits
	// with nt's own.
	return extra.With(nt, extra.Normalize(m))
}

// tokenSecrets returns the values of t that must never reach an error or a
// log line: its access and refresh tokens, and its extras that are tokens
// too (see secretExtra).
func tokenSecrets(t *oauth2.Token) []string {
	if t == nil {
		return nil
	}
	s := []string{t.AccessToken, t.RefreshToken}
	for name, v := range extra.Of(t) {
		if str, ok := v.(string); ok && secretExtra(name) {
			s = append(s, str)
		}
	}
	return s
}

// secretExtra reports whether the extra member name holds a credential, to
// be redacted like the access and refresh tokens: the ID token, and any
// other "…_token".
func secretExtra(name string) bool {
	return strings.HasSuffix(name, "_token")
}

// maxKeepExtra bounds the length of a KeepExtra list.
const maxKeepExtra = 64

// checkKeepExtra checks the KeepExtra list of the endpoint type named
// what.
func checkKeepExtra(what string, keep []string) error {
	if len(keep) > maxKeepExtra {
		return fmt.Errorf("%s.KeepExtra has %d names, at most %d are allowed", what, len(keep), maxKeepExtra)
	}
	for _, name := range keep {
		switch {
		case name == KeepAllExtra:
		case extra.Reserved(name):
			return fmt.Errorf("%s.KeepExtra names %q, which the token holds in a field of its own", what, name)
		case !extra.ValidName(name):
			return errors.New(what + ".KeepExtra holds a name that is empty, longer than 128 bytes or not valid UTF-8")
		}
	}
	return nil
}

// keepNames returns the names of the members a token response is read for
// beyond its token: the defaults and the endpoint's KeepExtra.
func keepNames(keep []string) []string {
	return append(append(make([]string, 0, len(extra.Default)+len(keep)), extra.Default...), keep...)
}
