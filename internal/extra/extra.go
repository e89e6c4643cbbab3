// Package extra holds the rules for the extra members of a token
// (oauth2.Token.Extra) that the engine and the stores keep: which names,
// which values, how many and how large. Every package that keeps extras
// (the engine's copies, the token response parser, the stores' codecs)
// goes through [Normalize] or [Of], so they all keep the same things.
//
// A kept set of extras is a map[string]any whose values are string,
// float64 or bool: the JSON scalars, as encoding/json (and so
// golang.org/x/oauth2, for a JSON token response) reads them. Everything
// else is dropped: null, objects, arrays, strings that are not valid UTF-8
// or hold U+FFFD (JSON would not carry them unchanged), numbers that are
// not finite. Integers become float64, as a JSON round trip makes them
// (above 2^53 they lose precision). Names are valid UTF-8, 1 to [MaxName]
// bytes, and not one that oauth2.Token has a field for (see [Reserved]).
//
// The limits bound what a hostile token endpoint or store can make a
// program keep, copy and write: at most [MaxMembers] members, string values
// of at most [MaxValue] bytes, and [MaxTotal] bytes in all. What does not
// fit is dropped, in a fixed order (the [Default] names first, in their
// order, then the others by name), so the same input always keeps the same
// members. Dropping, never failing: the extras travel with a token whose
// refresh token may already be spent, and the token must not be lost for
// them.
package extra

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// Limits of a kept set of extras.
const (
	MaxMembers = 32       // members
	MaxName    = 128      // bytes of a name
	MaxValue   = 32 << 10 // bytes of a string value (an id_token is a few KiB)
	MaxTotal   = 64 << 10 // bytes of all names and values; a number or a bool counts 8
)

// Default are the members kept from every token response: the OpenID
// Connect ID token, the granted scope (RFC 6749 §5.1) and the lifetime of
// the refresh token that Keycloak and others send.
var Default = []string{"id_token", "scope", "refresh_expires_in"}

// Reserved reports whether name is one that oauth2.Token holds in a field
// of its own (as it names them in a token response or in its JSON form):
// never an extra, so that a token's extras never hold a second, stale copy
// of its access or refresh token.
func Reserved(name string) bool {
	switch name {
	case "access_token", "token_type", "refresh_token", "expires_in", "expiry":
		return true
	}
	return false
}

// ValidName reports whether name can be the name of a kept extra.
func ValidName(name string) bool {
	return name != "" && len(name) <= MaxName && utf8.ValidString(name) && !Reserved(name)
}

// Normalize returns the members of m that are kept, converted as the
// package documentation says, or nil if none is. m is not modified, and the
// result shares nothing with it.
func Normalize(m map[string]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	return normalize(reflect.ValueOf(m))
}

// Of returns a normalized copy of t's extras (nil if it has none): those
// set with oauth2.Token.WithExtra, as Extra returns them.
//
// x/oauth2 keeps them in an unexported field, raw, and offers no way to
// list them, only Extra(name). Of reads the field with reflection, read-only
// (no unsafe, nothing is written): it holds a map[string]any (a JSON token
// response, WithExtra) or a url.Values (a form-encoded response). Should a
// future x/oauth2 rename the field, Of falls back to asking Extra for the
// Default names; TestRawField fails first, so the fallback is not silent.
func Of(t *oauth2.Token) map[string]any {
	if t == nil {
		return nil
	}
	raw := rawField(t)
	if !raw.IsValid() {
		return probe(t)
	}
	if raw.Kind() != reflect.Interface || raw.IsNil() {
		return nil
	}
	return normalize(raw.Elem())
}

// With returns a copy of t that carries m as its extras (none if m is
// empty). m must be normalized and is not copied: the caller gives it up.
func With(t *oauth2.Token, m map[string]any) *oauth2.Token {
	c := &oauth2.Token{
		AccessToken:  t.AccessToken,
		TokenType:    t.TokenType,
		RefreshToken: t.RefreshToken,
		Expiry:       t.Expiry,
		ExpiresIn:    t.ExpiresIn,
	}
	if len(m) == 0 {
		return c
	}
	return c.WithExtra(m)
}

// Copy returns a copy of t's exported fields and of its kept extras.
func Copy(t *oauth2.Token) *oauth2.Token {
	return With(t, Of(t))
}

// rawIndex is the index of oauth2.Token's raw field, or nil if it has
// none; looked up once, as copies of tokens are frequent.
var rawIndex = func() []int {
	f, ok := reflect.TypeFor[oauth2.Token]().FieldByName("raw")
	if !ok {
		return nil
	}
	return f.Index
}()

// rawField returns t's unexported raw field, or the zero Value if the
// struct has none.
func rawField(t *oauth2.Token) reflect.Value {
	if rawIndex == nil {
		return reflect.Value{}
	}
	return reflect.ValueOf(t).Elem().FieldByIndex(rawIndex)
}

// probe asks t for the Default names, for an x/oauth2 whose raw field Of
// cannot find.
func probe(t *oauth2.Token) map[string]any {
	m := make(map[string]any, len(Default))
	for _, name := range Default {
		if v := t.Extra(name); v != nil {
			m[name] = v
		}
	}
	return Normalize(m)
}

var (
	mapType    = reflect.TypeFor[map[string]any]()
	valuesType = reflect.TypeFor[url.Values]()
	numberType = reflect.TypeFor[json.Number]()
)

// normalize keeps what it can of v, a map[string]any or a url.Values (of
// which, as url.Values.Get, the first value of each name), possibly read
// from an unexported field: only methods that such a Value allows are used
// (no Interface).
func normalize(v reflect.Value) map[string]any {
	if v.Type() != mapType && v.Type() != valuesType {
		return nil // Extra returns nothing for any other type
	}
	if v.Len() == 0 {
		return nil
	}
	vals := make(map[string]reflect.Value, min(v.Len(), MaxMembers))
	names := make([]string, 0, min(v.Len(), MaxMembers))
	// The map may be huge: only names that can be kept take room, and a
	// pass over it costs no more than its size.
	for it := v.MapRange(); it.Next(); {
		name := it.Key().String()
		if !ValidName(name) {
			continue
		}
		val := it.Value()
		if v.Type() == valuesType {
			if val.Len() == 0 {
				continue
			}
			val = val.Index(0)
		}
		vals[name] = val
		names = append(names, name)
	}
	sortNames(names)
	var out map[string]any
	total := 0
	for _, name := range names {
		s, ok := scalar(vals[name])
		if !ok {
			continue
		}
		size := len(name) + 8
		if str, isStr := s.(string); isStr {
			size = len(name) + len(str)
		}
		if len(out) == MaxMembers || total+size > MaxTotal {
			continue
		}
		if out == nil {
			out = make(map[string]any)
		}
		out[name] = s
		total += size
	}
	return out
}

// sortNames puts the Default names first, in their order, then the others
// in byte order.
func sortNames(names []string) {
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(Default, a), slices.Index(Default, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
}

// scalar returns the kept form of v, or false if v is not kept.
func scalar(v reflect.Value) (any, bool) {
	for v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil, false
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if v.Type() == numberType {
			f, ok := Number(s)
			return f, ok
		}
		return s, len(s) <= MaxValue && KeepsString(s)
	case reflect.Bool:
		return v.Bool(), true
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		return f, !math.IsInf(f, 0) && !math.IsNaN(f)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(v.Uint()), true
	}
	return nil, false
}

// Number returns the float64 of a JSON number literal, or false if s is
// not one or is out of range.
func Number(s string) (float64, bool) {
	if s == "" || !json.Valid([]byte(s)) || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// KeepsString reports whether s comes back unchanged from JSON: valid
// UTF-8, and no U+FFFD, which is what a decoder makes of invalid UTF-8 and
// of lone surrogates, so that a string holding it may not be the one sent.
func KeepsString(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == utf8.RuneError {
			return false
		}
	}
	return true
}

// FromJSON returns what is kept of the members of a JSON object, given as
// their raw values: strings, numbers (as float64) and booleans, normalized;
// null, objects, arrays and what Normalize drops are dropped.
func FromJSON(raw map[string]json.RawMessage) map[string]any {
	m := make(map[string]any, min(len(raw), MaxMembers))
	for name, r := range raw {
		if !ValidName(name) {
			continue
		}
		if v, ok := jsonScalar(r); ok {
			m[name] = v
		}
	}
	return Normalize(m)
}

// jsonScalar returns the value of a raw JSON scalar.
func jsonScalar(raw json.RawMessage) (any, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		return s, true
	case 't', 'f':
		return raw[0] == 't', true
	case 'n', '{', '[':
		return nil, false
	}
	return Number(string(raw))
}
