package filestore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"golang.org/x/oauth2"
)

// ErrCorrupt is wrapped by the error of Load and CompareAndSwap when a token
// file exists but does not hold a token of this format for the key: it is
// truncated, not JSON, has fields of the wrong type or members the store
// does not write (unknown, repeated, in another letter case), belongs to
// another key, was written by a newer version of this package, or is not a
// regular file (a symbolic link, a named pipe, a directory). Such an error
// names the file but never quotes its content.
var ErrCorrupt = errors.New("filestore: corrupt token file")

// encode returns the file content for key's token: the JSON of
// [tokenjson.Encode], indented for human readers and ending in a newline.
func encode(key string, tok *oauth2.Token) ([]byte, error) {
	data, err := tokenjson.Encode(key, tok)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return nil, fmt.Errorf("filestore: encode token: %w", err) // cannot happen: data is valid JSON
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// decode parses a token file that must hold key. Its errors describe what is
// wrong without quoting the data, which holds tokens.
func decode(data []byte, key string) (*oauth2.Token, error) {
	return tokenjson.Decode(key, data)
}
