package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/oauthkit/refresh"
)

var _ refresh.Deleter = (*Store)(nil)

// Delete implements [refresh.Deleter]: it removes key's token file, then
// its extras file and any temporary file a crashed write of the key left
// behind (they hold tokens too), and flushes the directory, so that the
// deletion survives a crash. A key without files is not an error.
//
// Delete holds the key's write lock, as Save and CompareAndSwap do, so a
// CompareAndSwap runs wholly before it (its token is deleted) or wholly
// after it (it finds no token: [refresh.ErrConflict] unless old is nil);
// across processes on platforms with flock(2), within this process
// elsewhere. Whatever is at the token file's name is removed, a symbolic
// link itself (never what it points to) or a corrupt file included.
//
// The key's lock files stay: removing one that another process holds or is
// opening would let a third lock a new file of the same name while the
// holder still holds the old one.
func (s *Store) Delete(ctx context.Context, key string) error {
	unlock, err := lockWrite(ctx, s.path(key, wlockExt))
	if err != nil {
		return err
	}
	defer unlock()
	// The token file first: once it is gone the key is deleted, and a
	// crash before the rest leaves only files no Load reads without it.
	removed := false
	for _, path := range append([]string{s.path(key, tokenExt), s.path(key, extraExt)}, s.tempFiles(key)...) {
		switch err := os.Remove(path); {
		case err == nil:
			removed = true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("filestore: delete: %w", err)
		}
	}
	if !removed {
		return nil
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("filestore: flush directory %s after a delete: %w", s.dir, err)
	}
	return nil
}

// tempFiles returns the paths of key's temporary files ("<hash>.json.tmp-…"
// and "<hash>.extra.tmp-…"). Only a crash leaves one behind: every write
// removes its own, and makes it under the write lock that the caller holds,
// so none of them is in use. (Without flock(2) that lock is this process's
// only: a write of another process at this moment fails and is tried
// again.) A directory that cannot be listed gives none: the token itself
// is deleted all the same.
func (s *Store) tempFiles(key string) []string {
	d, err := os.OpenFile(s.dir, os.O_RDONLY|dirFlags, 0) // as syncDir: never blocks
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	hash := strings.TrimSuffix(filepath.Base(s.path(key, tokenExt)), tokenExt)
	var paths []string
	for _, n := range names {
		if strings.HasPrefix(n, hash+tokenExt+tempMark) || strings.HasPrefix(n, hash+extraExt+tempMark) {
			paths = append(paths, filepath.Join(s.dir, n))
		}
	}
	return paths
}
