// This file is a frozen copy of internal/tokenjson/tokenjson.go as the
// release before token extras had it (git show main:internal/tokenjson/tokenjson.go
// when the extras were added), its top-level names prefixed with v1 and
// nothing else changed. It is what a process of that release, still
// running during a rolling deploy or started again by a rollback, reads
// the stores' token records with. Never edit it to make a test pass: a
// test that fails here means a new record would be refused by that
// release.

package tokenjson_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// v1Version is the "version" field of the JSON that [v1Encode] writes. [v1Decode]
// refuses any other, so that an older program never misreads a newer
// format. A new member needs a new version: v1Decode refuses unknown members.
const v1Version = 1

// v1WireToken is the JSON of a token. v1Encode writes every field but Expiry
// when it is zero and KeyBase64 when Key is exact. Its JSON names are the
// only member names v1Decode accepts (v1MemberNames).
type v1WireToken struct {
	Version *int    `json:"version"`
	Key     *string `json:"key"`
	// KeyBase64 holds the key, base64-encoded, when it is not valid
	// UTF-8: JSON cannot carry such a string, so Key then holds it with
	// the invalid bytes replaced (for human readers only).
	KeyBase64    string  `json:"key_base64,omitempty"`
	AccessToken  *string `json:"access_token"`
	TokenType    string  `json:"token_type"`
	RefreshToken string  `json:"refresh_token"`
	Expiry       string  `json:"expiry,omitempty"` // time.RFC3339Nano, UTC
	ExpiresIn    int64   `json:"expires_in"`
}

// v1Encode returns the compact JSON of key's token. Extra response fields
// (oauth2.Token.Extra) are not kept, as in refresh.MemoryStore. It fails
// only if the expiry's year is outside 0 to 9999; its errors have no
// package prefix.
func v1Encode(key string, tok *oauth2.Token) ([]byte, error) {
	v := v1Version
	wt := v1WireToken{
		Version:      &v,
		Key:          &key,
		AccessToken:  &tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		ExpiresIn:    tok.ExpiresIn,
	}
	if !utf8.ValidString(key) {
		wt.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(key))
	}
	if !tok.Expiry.IsZero() {
		// RFC 3339 has four-digit years: a time outside them would be
		// saved fine and never load again.
		if y := tok.Expiry.UTC().Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("token expiry year %d is out of range", y)
		}
		wt.Expiry = tok.Expiry.UTC().Format(time.RFC3339Nano)
	}
	data, err := json.Marshal(&wt)
	if err != nil {
		return nil, fmt.Errorf("encode token: %w", err) // cannot happen: strings and numbers only
	}
	return data, nil
}

// v1Decode parses the JSON of a token that must belong to key. Its errors
// describe what is wrong without quoting the data, which holds tokens;
// encoding/json's own messages may quote parts of it, so they are not
// passed on.
//
// v1Decode is strict: it accepts what v1Encode writes, give or take white
// space, the order of the members and JSON escapes, and nothing else. Every
// member name must be one v1Encode writes, spelt exactly so (encoding/json
// alone would take any letter case), and appear once (encoding/json alone
// would take the last); "key_base64" must be what v1Encode writes for a key
// that is not valid UTF-8, and agree with "key". Members that v1Encode always
// writes but that older writers left out (token_type, refresh_token,
// expires_in) may be missing. A v1Record of another format version is
// reported as such whatever else it holds: [v1Version] is how the format
// evolves, so an unknown member is an error, not a newer field to skip.
func v1Decode(key string, data []byte) (*oauth2.Token, error) {
	if err := v1CheckSyntax(data); err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		// v1Encode escapes what is not UTF-8; a JSON decoder would
		// silently replace it.
		return nil, errors.New("content is not valid UTF-8")
	}
	rec, err := v1Split(data)
	if err != nil {
		return nil, err
	}
	if raw, ok := rec.values["version"]; ok {
		var v int
		if json.Unmarshal(raw, &v) == nil && v != v1Version {
			return nil, fmt.Errorf("unsupported format version %d", v)
		}
	}
	if rec.problem != nil {
		return nil, rec.problem
	}
	for _, name := range v1MemberNames {
		if string(rec.values[name]) == "null" {
			// encoding/json would read null as "absent" or "".
			return nil, fmt.Errorf("field %q has the wrong JSON type", name)
		}
	}
	// Every member name is now exactly one of v1WireToken's, once: the
	// case-insensitive matching of encoding/json cannot pick another.
	var wt v1WireToken
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(data, &wt); errors.As(err, &typeErr) && typeErr.Field != "" {
		return nil, fmt.Errorf("field %q has the wrong JSON type", typeErr.Field)
	} else if err != nil {
		return nil, errors.New("cannot decode JSON") // cannot happen: v1Split has read it
	}
	switch {
	case wt.Version == nil:
		return nil, errors.New(`no "version" field`)
	case wt.Key == nil:
		return nil, errors.New(`no "key" field`)
	case wt.AccessToken == nil:
		return nil, errors.New(`no "access_token" field`)
	}
	_, hasBase64 := rec.values["key_base64"]
	if err := v1CheckKey(key, *wt.Key, wt.KeyBase64, hasBase64); err != nil {
		return nil, err
	}
	tok := &oauth2.Token{
		AccessToken:  *wt.AccessToken,
		TokenType:    wt.TokenType,
		RefreshToken: wt.RefreshToken,
		ExpiresIn:    wt.ExpiresIn,
	}
	if _, ok := rec.values["expiry"]; ok {
		t, err := time.Parse(time.RFC3339Nano, wt.Expiry)
		if err != nil {
			return nil, errors.New(`field "expiry" is not an RFC 3339 time`)
		}
		if t.IsZero() {
			// v1Encode writes no expiry for it.
			return nil, errors.New(`field "expiry" holds the zero time`)
		}
		tok.Expiry = t
	}
	return tok, nil
}

// v1CheckSyntax reports data that is not one JSON value, saying where
// without quoting it.
func v1CheckSyntax(data []byte) error {
	var raw json.RawMessage
	err := json.Unmarshal(data, &raw)
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &syntaxErr):
		if syntaxErr.Offset >= int64(len(data)) {
			return errors.New("JSON ends early (truncated?)")
		}
		return fmt.Errorf("invalid JSON at byte %d", syntaxErr.Offset)
	case err != nil:
		return errors.New("cannot decode JSON")
	}
	return nil
}

// v1MemberNames are the names of the members v1Encode writes, as it spells
// them: the JSON names of v1WireToken's fields, in their order.
var v1MemberNames = func() []string {
	t := reflect.TypeFor[v1WireToken]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// v1Record is a JSON object v1Split into its members by [v1Split].
type v1Record struct {
	// values holds the raw value of each member named in v1MemberNames, at
	// its first occurrence, even after a problem.
	values map[string]json.RawMessage
	// problem is the first member v1Split found wrong: its name is not in
	// v1MemberNames, in any case, or it repeats an earlier one. It is nil
	// if all are right.
	problem error
}

// v1Split reads the members of the JSON object data, which must be valid
// JSON. It goes on after a problem (see v1Record), so that the version can
// be checked first. JSON null is an object without members, as
// encoding/json reads it. Only the top level is v1Split: the values of the
// members are scalars, and json.Unmarshal refuses anything else in them.
func v1Split(data []byte) (v1Record, error) {
	rec := v1Record{values: make(map[string]json.RawMessage, len(v1MemberNames))}
	dec := json.NewDecoder(bytes.NewReader(data))
	switch t, err := dec.Token(); {
	case err != nil:
		return rec, errors.New("cannot decode JSON") // cannot happen: v1CheckSyntax has read it
	case t == nil:
		return rec, nil
	case t != json.Delim('{'):
		return rec, errors.New("content is not a JSON object")
	}
	for n := 1; dec.More(); n++ {
		t, err := dec.Token()
		name, _ := t.(string)
		var value json.RawMessage
		if err == nil {
			err = dec.Decode(&value)
		}
		if err != nil {
			return rec, errors.New("cannot decode JSON") // cannot happen, as above
		}
		switch err := v1CheckName(name, n, rec.values); {
		case err == nil:
			rec.values[name] = value
		case rec.problem == nil:
			rec.problem = err
		}
	}
	return rec, nil
}

// v1CheckName checks the name of the nth member of an object whose members
// before it are in seen. Its errors quote only names of v1MemberNames: any
// other name comes from the data.
func v1CheckName(name string, n int, seen map[string]json.RawMessage) error {
	for _, m := range v1MemberNames {
		switch {
		case name == m:
			if _, dup := seen[name]; dup {
				return fmt.Errorf("member %q appears twice", m)
			}
			return nil
		case strings.EqualFold(name, m):
			return fmt.Errorf("member %d is named %q in another letter case", n, m)
		}
	}
	return fmt.Errorf("member %d has an unknown name", n)
}

// v1CheckKey checks that a v1Record whose "key" is stored, and whose
// "key_base64" is b64 if hasBase64, belongs to key.
func v1CheckKey(key, stored, b64 string, hasBase64 bool) error {
	if hasBase64 {
		b, err := base64.StdEncoding.DecodeString(b64)
		// DecodeString skips line breaks and ignores the padding bits:
		// only v1Encode's own spelling of b is accepted.
		if err != nil || base64.StdEncoding.EncodeToString(b) != b64 {
			return errors.New(`field "key_base64" is not valid base64`)
		}
		if string(b) != key {
			return v1ErrAnotherKey
		}
		if utf8.Valid(b) {
			// v1Encode writes it only for keys that "key" cannot hold.
			return errors.New(`field "key_base64" holds a valid UTF-8 key`)
		}
		if v1Stored(key) != stored {
			return errors.New(`fields "key" and "key_base64" disagree`)
		}
		return nil
	}
	if stored != key {
		return v1ErrAnotherKey
	}
	return nil
}

// v1ErrAnotherKey refuses a v1Record copied or renamed from another key's,
// rather than hand out someone else's token.
var v1ErrAnotherKey = errors.New("it holds the token of another key")

// v1Stored returns s as v1Decode returns a string that v1Encode wrote: JSON
// cannot hold bytes that are not UTF-8, and v1Encode (json.Marshal) writes
// U+FFFD for each of them. It is s itself if s is valid UTF-8.
func v1Stored(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	data, _ := json.Marshal(s) // cannot fail: a string
	var out string
	json.Unmarshal(data, &out)
	return out
}
