package tokenjson

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/extra"
)

// The extras of a token (oauth2.Token.Extra) are not in the token record:
// Decode refuses unknown members, so a record with them would be refused
// by every program of the releases before the extras were kept, and
// rolling deploys and rollbacks mix releases. The stores keep them in a
// record of their own, next to the token's, where older programs do not
// look (filestore: a file of its own; redisstore: another field of the
// hash; pgstore: another column):
//
//	{"version":1,"tokens":[{"for":"<fingerprint>","extra":{"id_token":"…","scope":"…"}}]}
//
// Each entry is bound to the token it belongs to by [ExtraFingerprint]:
// a program of an older release that saves a token leaves the extras
// record as it was, and the extras of the token it replaced must not be
// taken for the new token's. [DecodeExtra] uses the first entry for the
// token it is given and ignores the others.
//
// Unlike Decode, DecodeExtra is lenient where that is safe, so that the
// record can grow without another such detour: unknown members are
// ignored, and a record of another version is ignored whole (the token
// loads without extras). Values are what internal/extra keeps; anything
// else in "extra" is dropped.

// ExtraVersion is the "version" of the extras records EncodeExtra writes.
const ExtraVersion = 1

// extraRecord is the JSON of an extras record.
type extraRecord struct {
	Version *int         `json:"version"`
	Tokens  []extraEntry `json:"tokens"`
}

type extraEntry struct {
	For   string                     `json:"for"`
	Extra map[string]json.RawMessage `json:"extra"`
}

// ExtraFingerprint is the lowercase hex SHA-256 of key and of tok's access
// and refresh tokens, length-prefixed, with a label of its own: what binds
// an entry of an extras record to its token. The token strings are taken
// as a JSON record stores them (see [Stored]), so that the token Decode
// returns has the fingerprint of the one saved.
func ExtraFingerprint(key string, tok *oauth2.Token) string {
	h := sha256.New()
	h.Write([]byte("refresh/tokenjson/extra/v1\x00"))
	for _, s := range []string{key, Stored(tok.AccessToken), Stored(tok.RefreshToken)} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(s))))
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// EncodeExtra returns the extras record for key's token tok, or nil if tok
// has no extras (the store then keeps no record, or removes the one it
// has). If prev, the record stored until now, is readable and its first
// entry is for another token, that entry is kept after tok's, so that a
// reader that loads the previous token while this one is being saved still
// finds its extras; pass nil where the token and the record are written in
// one step.
func EncodeExtra(key string, tok *oauth2.Token, prev []byte) ([]byte, error) {
	m := extra.Of(tok)
	if len(m) == 0 {
		return nil, nil
	}
	v := ExtraVersion
	rec := extraRecord{Version: &v}
	fp := ExtraFingerprint(key, tok)
	raw := make(map[string]json.RawMessage, len(m))
	for name, val := range m {
		b, err := json.Marshal(val)
		if err != nil {
			return nil, errors.New("encode token extras: a value cannot be encoded") // cannot happen: scalars only
		}
		raw[name] = b
	}
	rec.Tokens = append(rec.Tokens, extraEntry{For: fp, Extra: raw})
	if p, err := decodeExtraRecord(prev); err == nil && p != nil && len(p.Tokens) > 0 && p.Tokens[0].For != fp {
		rec.Tokens = append(rec.Tokens, p.Tokens[0])
	}
	data, err := json.Marshal(&rec)
	if err != nil {
		return nil, errors.New("encode token extras: cannot encode the record") // cannot happen
	}
	return data, nil
}

// DecodeExtra returns tok, the token Decode read for key, with the extras
// that data, the key's extras record, holds for it; tok itself if there
// are none for it, if data is empty, or if the record is of another
// version. A record that is not one (not a JSON object, members of the
// wrong types) is an error, which quotes nothing of data.
func DecodeExtra(key string, tok *oauth2.Token, data []byte) (*oauth2.Token, error) {
	rec, err := decodeExtraRecord(data)
	if err != nil || rec == nil {
		return tok, err
	}
	fp := ExtraFingerprint(key, tok)
	for _, e := range rec.Tokens {
		if e.For != fp {
			continue
		}
		return extra.With(tok, extra.FromJSON(e.Extra)), nil
	}
	return tok, nil
}

// decodeExtraRecord parses an extras record; nil, nil if data is empty or
// of another version.
func decodeExtraRecord(data []byte) (*extraRecord, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	if err := checkSyntax(data); err != nil {
		return nil, fmt.Errorf("token extras: %w", err)
	}
	// The version first: a record of another version may hold anything
	// else.
	var head struct {
		Version *int `json:"version"`
	}
	if err := unmarshal(data, &head); err != nil {
		return nil, err
	}
	switch {
	case head.Version == nil:
		return nil, errors.New(`token extras: no "version" field`)
	case *head.Version != ExtraVersion:
		return nil, nil // a newer format: its extras are not read, the token is
	}
	var rec extraRecord
	if err := unmarshal(data, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// unmarshal is json.Unmarshal with errors that quote nothing of data.
func unmarshal(data []byte, v any) error {
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(data, v); errors.As(err, &typeErr) {
		return errors.New("token extras: a field has the wrong JSON type")
	} else if err != nil {
		return errors.New("token extras: cannot decode JSON")
	}
	return nil
}
