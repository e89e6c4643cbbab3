//go:build !unix

package filestore

import (
	"io/fs"
	"os"
)

// openNoFollow opens path, refusing a symbolic link at it. Without
// O_NOFOLLOW (Windows, Plan 9, WebAssembly) this takes a check before the
// open: a link put in place between the two is followed. openRegular checks
// what it opened.
func openNoFollow(path string, flag int, perm fs.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, &notRegularError{path: path, mode: fi.Mode()}
	}
	return os.OpenFile(path, flag, perm)
}

// dirFlags open the store's directory to flush it; there are no extra
// flags here (syncDir does not flush on these platforms anyway).
const dirFlags = 0
