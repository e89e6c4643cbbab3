package filestore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/tokenjson"
)

// A token's extras (oauth2.Token.Extra) are in a file of their own,
// "<hash>.extra", holding a tokenjson extras record: the token file of the
// releases before them is read by a decoder that refuses any member it
// does not know, so they cannot be in it (see internal/tokenjson). Those
// releases never open the extras file, and each of its entries is bound to
// its token, so that the extras of a token one of them replaced are not
// taken for the new token's.
//
// Writes go in an order that keeps every read whole without a lock:
//
//   - a token with extras: the extras file first, holding the new token's
//     entry and the previous token's, then the token file. A Load reads the
//     token file, then the extras file: whichever token it read, the
//     extras file has its entry (unless two more saves came in between).
//   - a token without extras: the token file first, then the extras file is
//     removed. A Load in between finds no entry for the new token.
//
// A crash or a failed write between the two steps leaves the previous
// token with its extras, or the new token without them; never one token
// with another's extras.

// write replaces key's token file with data, tok's encoding, and its
// extras file with tok's extras, in the order above. The caller holds the
// key's write lock.
func (s *Store) write(key string, tok *oauth2.Token, data []byte) error {
	path := s.path(key, extraExt)
	prev, err := readFile(path)
	if err != nil && !errors.Is(err, refresh.ErrNotFound) {
		prev = nil // unreadable: it is replaced whole, nothing is kept of it
	}
	rec, err := tokenjson.EncodeExtra(key, tok, prev)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if rec == nil {
		if err := replaceFile(s.dir, s.path(key, tokenExt), data); err != nil {
			return err
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("filestore: removing the extras of the previous token: %w", err)
		}
		return nil
	}
	if err := replaceFile(s.dir, path, append(rec, '\n')); err != nil {
		return err
	}
	return replaceFile(s.dir, s.path(key, tokenExt), data)
}

// readExtra returns tok, read from key's token file, with its extras from
// the key's extras file, if that has any for it.
func (s *Store) readExtra(key string, tok *oauth2.Token) (*oauth2.Token, error) {
	path := s.path(key, extraExt)
	data, err := readFile(path)
	switch {
	case errors.Is(err, refresh.ErrNotFound):
		return tok, nil
	case err != nil:
		return nil, err
	}
	tok, err = tokenjson.DecodeExtra(key, tok, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return tok, nil
}

// readFile reads the regular file at path, of at most maxFileSize bytes.
// A missing file is refresh.ErrNotFound; anything but a regular file, or a
// larger one, is ErrCorrupt.
func readFile(path string) ([]byte, error) {
	f, err := openRegular(path, os.O_RDONLY, 0)
	var notRegular *notRegularError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, refresh.ErrNotFound
	case errors.As(err, &notRegular):
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, notRegular)
	case err != nil:
		return nil, fmt.Errorf("filestore: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrCorrupt, path, maxFileSize)
	}
	return data, nil
}
