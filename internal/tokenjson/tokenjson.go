// Package tokenjson encodes and decodes the JSON token format shared by
// filestore and redisstore:
//
//	{"version":1,"key":"alice","access_token":"…","token_type":"Bearer",
//	 "refresh_token":"…","expiry":"2031-05-06T06:08:09.123456789Z","expires_in":3600}
//
// "key_base64" is added when the key is not valid UTF-8, and "expiry"
// (RFC 3339 with nanoseconds, in UTC) is omitted when the expiry is zero.
//
// [Decode] accepts nothing else: no member name but these, each spelt so
// and written once, and "key_base64" only as Encode writes it. No error of
// Decode quotes the data, which holds tokens; callers wrap the errors with
// their own sentinel and say where the data came from.
//
// A token's extras (oauth2.Token.Extra) are kept in a second record, next
// to the token's: see [EncodeExtra].
package tokenjson

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

// Version is the "version" field of the JSON that [Encode] writes. [Decode]
// refuses any other, so that an older program never misreads a newer
// format. A new member needs a new version: Decode refuses unknown members.
const Version = 1

// wireToken is the JSON of a token. Encode writes every field but Expiry
// when it is zero and KeyBase64 when Key is exact. Its JSON names are the
// only member names Decode accepts (memberNames).
type wireToken struct {
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

// Encode returns the compact JSON of key's token. Its extras
// (oauth2.Token.Extra) are not in it but in a record of their own, for the
// reason [EncodeExtra] gives. It fails
// only if the expiry's year is outside 0 to 9999; its errors have no
// package prefix.
func Encode(key string, tok *oauth2.Token) ([]byte, error) {
	v := Version
	wt := wireToken{
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

// Decode parses the JSON of a token that must belong to key. Its errors
// describe what is wrong without quoting the data, which holds tokens;
// encoding/json's own messages may quote parts of it, so they are not
// passed on.
//
// Decode is strict: it accepts what Encode writes, give or take white
// space, the order of the members and JSON escapes, and nothing else. Every
// member name must be one Encode writes, spelt exactly so (encoding/json
// alone would take any letter case), and appear once (encoding/json alone
// would take the last); "key_base64" must be what Encode writes for a key
// that is not valid UTF-8, and agree with "key". Members that Encode always
// writes but that older writers left out (token_type, refresh_token,
// expires_in) may be missing. A record of another format version is
// reported as such whatever else it holds: [Version] is how the format
// evolves, so an unknown member is an error, not a newer field to skip.
func Decode(key string, data []byte) (*oauth2.Token, error) {
	if err := checkSyntax(data); err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		// Encode escapes what is not UTF-8; a JSON decoder would
		// silently replace it.
		return nil, errors.New("content is not valid UTF-8")
	}
	rec, err := split(data)
	if err != nil {
		return nil, err
	}
	if raw, ok := rec.values["version"]; ok {
		var v int
		if json.Unmarshal(raw, &v) == nil && v != Version {
			return nil, fmt.Errorf("unsupported format version %d", v)
		}
	}
	if rec.problem != nil {
		return nil, rec.problem
	}
	for _, name := range memberNames {
		if string(rec.values[name]) == "null" {
			// encoding/json would read null as "absent" or "".
			return nil, fmt.Errorf("field %q has the wrong JSON type", name)
		}
	}
	// Every member name is now exactly one of wireToken's, once: the
	// case-insensitive matching of encoding/json cannot pick another.
	var wt wireToken
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(data, &wt); errors.As(err, &typeErr) && typeErr.Field != "" {
		return nil, fmt.Errorf("field %q has the wrong JSON type", typeErr.Field)
	} else if err != nil {
		return nil, errors.New("cannot decode JSON") // cannot happen: split has read it
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
	if err := checkKey(key, *wt.Key, wt.KeyBase64, hasBase64); err != nil {
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
			// Encode writes no expiry for it.
			return nil, errors.New(`field "expiry" holds the zero time`)
		}
		tok.Expiry = t
	}
	return tok, nil
}

// checkSyntax reports data that is not one JSON value, saying where
// without quoting it.
func checkSyntax(data []byte) error {
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

// memberNames are the names of the members Encode writes, as it spells
// them: the JSON names of wireToken's fields, in their order.
var memberNames = func() []string {
	t := reflect.TypeFor[wireToken]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// record is a JSON object split into its members by [split].
type record struct {
	// values holds the raw value of each member named in memberNames, at
	// its first occurrence, even after a problem.
	values map[string]json.RawMessage
	// problem is the first member split found wrong: its name is not in
	// memberNames, in any case, or it repeats an earlier one. It is nil
	// if all are right.
	problem error
}

// split reads the members of the JSON object data, which must be valid
// JSON. It goes on after a problem (see record), so that the version can
// be checked first. JSON null is an object without members, as
// encoding/json reads it. Only the top level is split: the values of the
// members are scalars, and json.Unmarshal refuses anything else in them.
func split(data []byte) (record, error) {
	rec := record{values: make(map[string]json.RawMessage, len(memberNames))}
	dec := json.NewDecoder(bytes.NewReader(data))
	switch t, err := dec.Token(); {
	case err != nil:
		return rec, errors.New("cannot decode JSON") // cannot happen: checkSyntax has read it
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
		switch err := checkName(name, n, rec.values); {
		case err == nil:
			rec.values[name] = value
		case rec.problem == nil:
			rec.problem = err
		}
	}
	return rec, nil
}

// checkName checks the name of the nth member of an object whose members
// before it are in seen. Its errors quote only names of memberNames: any
// other name comes from the data.
func checkName(name string, n int, seen map[string]json.RawMessage) error {
	for _, m := range memberNames {
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

// checkKey checks that a record whose "key" is stored, and whose
// "key_base64" is b64 if hasBase64, belongs to key.
func checkKey(key, stored, b64 string, hasBase64 bool) error {
	if hasBase64 {
		b, err := base64.StdEncoding.DecodeString(b64)
		// DecodeString skips line breaks and ignores the padding bits:
		// only Encode's own spelling of b is accepted.
		if err != nil || base64.StdEncoding.EncodeToString(b) != b64 {
			return errors.New(`field "key_base64" is not valid base64`)
		}
		if string(b) != key {
			return errAnotherKey
		}
		if utf8.Valid(b) {
			// Encode writes it only for keys that "key" cannot hold.
			return errors.New(`field "key_base64" holds a valid UTF-8 key`)
		}
		if Stored(key) != stored {
			return errors.New(`fields "key" and "key_base64" disagree`)
		}
		return nil
	}
	if stored != key {
		return errAnotherKey
	}
	return nil
}

// errAnotherKey refuses a record copied or renamed from another key's,
// rather than hand out someone else's token.
var errAnotherKey = errors.New("it holds the token of another key")

// Stored returns s as Decode returns a string that Encode wrote: JSON
// cannot hold bytes that are not UTF-8, and Encode (json.Marshal) writes
// U+FFFD for each of them. It is s itself if s is valid UTF-8.
func Stored(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	data, _ := json.Marshal(s) // cannot fail: a string
	var out string
	json.Unmarshal(data, &out)
	return out
}
