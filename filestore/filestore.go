package filestore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// File name suffixes. Every file of a key is named by the key's hash
// followed by one of these.
const (
	tokenExt = ".json"  // the token, replaced atomically by rename
	extraExt = ".extra" // the token's extras (see extra.go), likewise
	lockExt  = ".lock"  // the refresh lock (Store.Lock), long-held
	wlockExt = ".wlock" // the write lock, held around one Save or CompareAndSwap
	tempMark = ".tmp-"  // temporary files: "<hash>.json.tmp-<random>"
)

// maxFileSize bounds what Load reads: a token file is a few kilobytes, so
// anything much larger is not one.
const maxFileSize = 1 << 20

var _ refresh.CompareAndSwapper = (*Store)(nil)

// Store is a [refresh.TokenStore] that keeps one file per key in a
// directory. It also implements [refresh.CompareAndSwapper],
// [refresh.Deleter] and, on platforms with flock(2), [refresh.Locker] and
// [refresh.TryLocker]. See
// the package documentation for the layout and the guarantees.
//
// A Store is safe for concurrent use by goroutines, and several processes
// may use Stores over the same directory at the same time.
type Store struct {
	dir string // absolute path of the directory; never changes
}

// New returns a Store that keeps its files in dir, creating dir (and its
// parents) with mode 0700 if it does not exist.
//
// An existing directory is used as it is: New does not change its
// permissions. Token files are always created with mode 0600, but a
// directory that others can write to lets them delete or replace those
// files, and one they can read lets them see which keys exist; use a
// directory only its owner can access.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("filestore: empty directory name")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	// MkdirAll succeeds on a symlink to a directory, which is fine; it
	// fails on a file, which it reports. Stat anyway for a clear message.
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("filestore: %s is not a directory", abs)
	}
	return &Store{dir: abs}, nil
}

// Dir returns the absolute path of the store's directory.
func (s *Store) Dir() string { return s.dir }

// path returns the path of key's file with the given suffix. The name is
// the lowercase hex SHA-256 of the key, so any key, whatever its bytes,
// length or case, maps to a distinct, portable name inside s.dir.
func (s *Store) path(key, ext string) string {
	sum := sha256.Sum256([]byte(key))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:])+ext)
}

// Load implements [refresh.TokenStore]. It returns [refresh.ErrNotFound] if
// key has no file, and another error (wrapping [ErrCorrupt] if the file
// cannot be decoded) if the file exists but cannot be read or decoded.
func (s *Store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: load: %w", err)
	}
	tok, err := readToken(s.path(key, tokenExt), key)
	if err != nil {
		return nil, err
	}
	return s.readExtra(key, tok)
}

// Save implements [refresh.TokenStore]. The file is replaced atomically:
// another process sees the old token or the new one, never a mix, and so
// does the next run of the program after a crash. When Save returns nil the
// new file and its directory entry have been flushed to disk.
func (s *Store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("filestore: Save: nil token")
	}
	data, err := encode(key, tok)
	if err != nil {
		return err
	}
	unlock, err := lockWrite(ctx, s.path(key, wlockExt))
	if err != nil {
		return err
	}
	defer unlock()
	return s.write(key, tok, data)
}

// CompareAndSwap implements [refresh.CompareAndSwapper]. old == nil means
// that no file exists for key. If the current file cannot be read or
// decoded, CompareAndSwap returns that error rather than [refresh.ErrConflict]
// and writes nothing.
//
// The check and the write are atomic with respect to every Save and
// CompareAndSwap of every process on platforms with flock(2), and of this
// process only elsewhere (see the package documentation).
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("filestore: CompareAndSwap: nil token")
	}
	data, err := encode(key, new)
	if err != nil {
		return err
	}
	unlock, err := lockWrite(ctx, s.path(key, wlockExt))
	if err != nil {
		return err
	}
	defer unlock()
	path := s.path(key, tokenExt)
	cur, err := readToken(path, key)
	if errors.Is(err, refresh.ErrNotFound) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	if !refresh.SameToken(cur, old) {
		return fmt.Errorf("filestore: %s: %w", path, refresh.ErrConflict)
	}
	return s.write(key, new, data)
}

// readToken reads and decodes the token file at path, which must hold key.
// Anything but a regular file at path (a symbolic link, wherever it points,
// a named pipe, a directory) is corrupt: the store never writes one.
func readToken(path, key string) (*oauth2.Token, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	tok, err := decode(data, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return tok, nil
}
