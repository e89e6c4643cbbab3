package redisstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"golang.org/x/oauth2"
)

// ErrCorrupt is wrapped by the error of Load and CompareAndSwap when a
// token's Redis key exists but does not hold a token of this format for the
// key: it is not a hash, lacks a field, holds JSON that is truncated or of
// the wrong shape, belongs to another key, or was written by a newer version
// of this package. Such an error names the Redis key but never quotes its
// content.
var ErrCorrupt = errors.New("redisstore: corrupt token value")

// maxValueSize bounds the JSON that Load decodes: a token is a few
// kilobytes, so anything much larger is not one.
const maxValueSize = 1 << 20

// Fields of a token's Redis hash.
const (
	fieldJSON  = "json"  // the token, as tokenjson JSON
	fieldCAS   = "cas"   // fingerprint(token), what CompareAndSwap compares
	fieldExtra = "extra" // the token's extras, a tokenjson extras record; only if it has any
)

// encode returns the JSON stored for key's token, and its extras record
// ("" if it has no extras).
//
// The extras are not in the token's JSON: the releases before them decode
// it with tokenjson.Decode, which refuses a member it does not know. They
// are in a field of their own, which those releases never read (they read
// "json" alone) and remove whenever they write, as every write replaces the
// hash whole.
func encode(key string, tok *oauth2.Token) (data []byte, extra string, err error) {
	data, err = tokenjson.Encode(key, tok)
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: %w", err)
	}
	rec, err := tokenjson.EncodeExtra(key, tok, nil)
	if err != nil {
		return nil, "", fmt.Errorf("redisstore: %w", err)
	}
	return data, string(rec), nil
}

// fromHash returns key's token from the fields of its Redis hash rk, as
// HGETALL returned them (at least one), or an error wrapping ErrCorrupt
// that names rk and quotes nothing of the fields.
func fromHash(rk, key string, m map[string]string) (*oauth2.Token, error) {
	data, ok := m[fieldJSON]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no %q field", ErrCorrupt, rk, fieldJSON)
	}
	tok, err := decode([]byte(data), key)
	if err != nil {
		// %v, not %w: the cause is described, not kept.
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, rk, err)
	}
	if rec, ok := m[fieldExtra]; ok {
		if len(rec) > maxValueSize {
			return nil, fmt.Errorf("%w: %s: field %q is larger than %d bytes", ErrCorrupt, rk, fieldExtra, maxValueSize)
		}
		if tok, err = tokenjson.DecodeExtra(key, tok, []byte(rec)); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, rk, err)
		}
	}
	return tok, nil
}

// decode parses the JSON of a token that must belong to key. Its errors
// describe what is wrong without quoting the data, which holds tokens.
func decode(data []byte, key string) (*oauth2.Token, error) {
	if len(data) > maxValueSize {
		return nil, fmt.Errorf("larger than %d bytes", maxValueSize)
	}
	return tokenjson.Decode(key, data)
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
