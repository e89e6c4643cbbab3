package filestore

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

// ErrCorrupt is wrapped by the error of Load and CompareAndSwap when a token
// file exists but does not hold a token of this format for the key: it is
// truncated, not JSON, has fields of the wrong type, belongs to another key,
// or was written by a newer version of this package. Such an error names the
// file but never quotes its content.
var ErrCorrupt = errors.New("filestore: corrupt token file")

// formatVersion is the "version" field of the files this package writes.
// Load refuses any other, so that an older program never misreads a newer
// format.
const formatVersion = 1

// fileToken is the JSON content of a token file. Save writes every field
// but Expiry when it is zero and KeyBase64 when Key is exact.
type fileToken struct {
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

// encode returns the file content for key's token. Extra response fields
// (oauth2.Token.Extra) are not kept, as in [refresh.MemoryStore].
func encode(key string, tok *oauth2.Token) ([]byte, error) {
	v := formatVersion
	ft := fileToken{
		Version:      &v,
		Key:          &key,
		AccessToken:  &tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		ExpiresIn:    tok.ExpiresIn,
	}
	if !utf8.ValidString(key) {
		ft.KeyBase64 = base64.StdEncoding.EncodeToString([]byte(key))
	}
	if !tok.Expiry.IsZero() {
		if y := tok.Expiry.UTC().Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("filestore: token expiry year %d is out of range", y)
		}
		ft.Expiry = tok.Expiry.UTC().Format(time.RFC3339Nano)
	}
	data, err := json.MarshalIndent(&ft, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("filestore: encode token: %w", err) // cannot happen: strings and numbers only
	}
	return append(data, '\n'), nil
}

// decode parses a token file that must hold key. Its errors describe what is
// wrong without quoting the data, which holds tokens; encoding/json's own
// messages may quote parts of it, so they are not passed on.
func decode(data []byte, key string) (*oauth2.Token, error) {
	var ft fileToken
	err := json.Unmarshal(data, &ft)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntaxErr):
		if syntaxErr.Offset >= int64(len(data)) {
			return nil, errors.New("JSON ends early (truncated file?)")
		}
		return nil, fmt.Errorf("invalid JSON at byte %d", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		// Unmarshal goes on after a type error, so Version is set if it
		// was readable: a newer format must be reported as such.
		if typeErr.Field != "version" && ft.Version != nil && *ft.Version != formatVersion {
			return nil, fmt.Errorf("unsupported format version %d", *ft.Version)
		}
		if typeErr.Field == "" {
			return nil, errors.New("content is not a JSON object")
		}
		return nil, fmt.Errorf("field %q has the wrong JSON type", typeErr.Field)
	case err != nil:
		return nil, errors.New("cannot decode JSON")
	}
	switch {
	case ft.Version == nil:
		return nil, errors.New(`no "version" field`)
	case *ft.Version != formatVersion:
		return nil, fmt.Errorf("unsupported format version %d", *ft.Version)
	case ft.Key == nil:
		return nil, errors.New(`no "key" field`)
	case ft.AccessToken == nil:
		return nil, errors.New(`no "access_token" field`)
	}
	stored := *ft.Key
	if ft.KeyBase64 != "" {
		b, err := base64.StdEncoding.DecodeString(ft.KeyBase64)
		if err != nil {
			return nil, errors.New(`field "key_base64" is not valid base64`)
		}
		stored = string(b)
	}
	if stored != key {
		// The file was copied or renamed from another key's: refuse it
		// rather than hand out someone else's token.
		return nil, errors.New("the file holds the token of another key")
	}
	tok := &oauth2.Token{
		AccessToken:  *ft.AccessToken,
		TokenType:    ft.TokenType,
		RefreshToken: ft.RefreshToken,
		ExpiresIn:    ft.ExpiresIn,
	}
	if ft.Expiry != "" {
		t, err := time.Parse(time.RFC3339Nano, ft.Expiry)
		if err != nil {
			return nil, errors.New(`field "expiry" is not an RFC 3339 time`)
		}
		tok.Expiry = t
	}
	return tok, nil
}
