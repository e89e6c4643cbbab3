package redisstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// ErrCorrupt is wrapped by the error of Load and CompareAndSwap when a
// token's Redis key exists but does not hold a token of this format for the
// key: it is not a hash, lacks a field, holds JSON that is truncated or of
// the wrong shape, belongs to another key, or was written by a newer version
// of this package. Such an error names the Redis key but never quotes its
// content.
var ErrCorrupt = errors.New("redisstore: corrupt token value")

// formatVersion is the "version" field of the values this package writes.
// Load refuses any other, so that an older program never misreads a newer
// format.
const formatVersion = 1

// maxValueSize bounds the JSON that Load decodes: a token is a few
// kilobytes, so anything much larger is not one.
const maxValueSize = 1 << 20

// Fields of a token's Redis hash.
const (
	fieldJSON = "json" // the token, as wireToken JSON
	fieldCAS  = "cas"  // fingerprint(token), what CompareAndSwap compares
)

// wireToken is the JSON in the "json" field of a token's hash. Save writes
// every field but Expiry when it is zero and KeyBase64 when Key is exact.
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

// encode returns the JSON stored for key's token. Extra response fields
// (oauth2.Token.Extra) are not kept, as in [refresh.MemoryStore].
func encode(key string, tok *oauth2.Token) ([]byte, error) {
	v := formatVersion
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
			return nil, fmt.Errorf("redisstore: token expiry year %d is out of range", y)
		}
		wt.Expiry = tok.Expiry.UTC().Format(time.RFC3339Nano)
	}
	data, err := json.Marshal(&wt)
	if err != nil {
		return nil, fmt.Errorf("redisstore: encode token: %w", err) // cannot happen: strings and numbers only
	}
	return data, nil
}

// decode parses the JSON of a token that must belong to key. Its errors
// describe what is wrong without quoting the data, which holds tokens;
// encoding/json's own messages may quote parts of it, so they are not
// passed on.
func decode(data []byte, key string) (*oauth2.Token, error) {
	if len(data) > maxValueSize {
		return nil, fmt.Errorf("larger than %d bytes", maxValueSize)
	}
	var wt wireToken
	err := json.Unmarshal(data, &wt)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		if syntaxErr.Offset >= int64(len(data)) {
			return nil, errors.New("JSON ends early (truncated value?)")
		}
		return nil, fmt.Errorf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		// Unmarshal goes on after a type error, so Version is set if it
		// was readable: a newer format must be reported as such.
		if typeErr.Field != "version" && wt.Version != nil && *wt.Version != formatVersion {
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
	case *wt.Version != formatVersion:
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
		return nil, errors.New("the value holds the token of another key")
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

// fingerprint is what CompareAndSwap compares: the lowercase hex SHA-256 of
// the token's access and refresh tokens, length-prefixed so that no two
// pairs share an encoding. It is never "", which stands for "no token".
//
// The strings are taken as JSON stores them: JSON replaces bytes that are
// not valid UTF-8, so a token with such bytes loads back different from
// the one saved; fingerprinting the stored form makes the token Load
// returned and the one that was saved compare equal, as SameToken would
// compare what Load returns.
func fingerprint(tok *oauth2.Token) string {
	h := sha256.New()
	h.Write([]byte("redisstore/cas/v1\x00"))
	for _, s := range []string{tok.AccessToken, tok.RefreshToken} {
		s = asJSONKeepsIt(s)
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// asJSONKeepsIt returns s as it comes back from a JSON round trip.
func asJSONKeepsIt(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	data, _ := json.Marshal(s)
	var out string
	json.Unmarshal(data, &out)
	return out
}
