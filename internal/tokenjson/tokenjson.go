// Package tokenjson encodes and decodes the JSON token format shared by
// filestore and redisstore:
//
//	{"version":1,"key":"alice","access_token":"…","token_type":"Bearer",
//	 "refresh_token":"…","expiry":"2031-05-06T06:08:09.123456789Z","expires_in":3600}
//
// "key_base64" is added when the key is not valid UTF-8, and "expiry"
// (RFC 3339 with nanoseconds, in UTC) is omitted when the expiry is zero.
//
// No error of [Decode] quotes the data, which holds tokens; callers wrap the
// errors with their own sentinel and say where the data came from.
package tokenjson

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// Version is the "version" field of the JSON that [Encode] writes. [Decode]
// refuses any other, so that an older program never misreads a newer
// format.
const Version = 1

// wireToken is the JSON of a token. Encode writes every field but Expiry
// when it is zero and KeyBase64 when Key is exact.
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

// Encode returns the compact JSON of key's token. Extra response fields
// (oauth2.Token.Extra) are not kept, as in refresh.MemoryStore. It fails
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
func Decode(key string, data []byte) (*oauth2.Token, error) {
	var wt wireToken
	err := json.Unmarshal(data, &wt)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		if syntaxErr.Offset >= int64(len(data)) {
			return nil, errors.New("JSON ends early (truncated?)")
		}
		return nil, fmt.Errorf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		// Unmarshal goes on after a type error, so Version is set if it
		// was readable: a newer format must be reported as such.
		if typeErr.Field != "version" && wt.Version != nil && *wt.Version != Version {
			return nil, fmt.Errorf("unsupported format version %d", *wt.Version)
		}
		if typeErr.Field == "" {
			return nil, errors.New("content is not a JSON object")
		}
		return nil, fmt.Errorf("field %q has the wrong JSON type", typeErr.Field)
	case err != nil:
		return nil, errors.New("cannot decode JSON")
	}
	switch {
	case wt.Version == nil:
		return nil, errors.New(`no "version" field`)
	case *wt.Version != Version:
		return nil, fmt.Errorf("unsupported format version %d", *wt.Version)
	case wt.Key == nil:
		return nil, errors.New(`no "key" field`)
	case wt.AccessToken == nil:
		return nil, errors.New(`no "access_token" field`)
	}
	stored := *wt.Key
	if wt.KeyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(wt.KeyBase64)
		if err != nil {
			return nil, errors.New(`field "key_base64" is not valid base64`)
		}
		stored = string(b)
	}
	if stored != key {
		// Copied or renamed from another key's: refuse it rather than
		// hand out someone else's token.
		return nil, errors.New("it holds the token of another key")
	}
	tok := &oauth2.Token{
		AccessToken:  *wt.AccessToken,
		TokenType:    wt.TokenType,
		RefreshToken: wt.RefreshToken,
		ExpiresIn:    wt.ExpiresIn,
	}
	if wt.Expiry != "" {
		t, err := time.Parse(time.RFC3339Nano, wt.Expiry)
		if err != nil {
			return nil, errors.New(`field "expiry" is not an RFC 3339 time`)
		}
		tok.Expiry = t
	}
	return tok, nil
}
