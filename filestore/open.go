package filestore

import (
	"io/fs"
	"os"
)

// openRegular opens the file at path with flag and perm, like os.OpenFile,
// if it is a regular file. It never follows a symbolic link at path, never
// blocks (a named pipe blocks an open for reading until a writer comes, and
// would ignore the caller's context), and refuses anything else that is
// not a regular file, with a *notRegularError, once it has checked the open
// file itself (so a file swapped in after a check cannot slip through).
//
// Other errors are os.OpenFile's: a missing file gives fs.ErrNotExist,
// unless flag creates it.
func openRegular(path string, flag int, perm fs.FileMode) (*os.File, error) {
	f, err := openNoFollow(path, flag, perm)
	if err != nil {
		// A link makes the open fail with ELOOP (Linux, macOS, OpenBSD),
		// EMLINK (FreeBSD, DragonFly) or EFTYPE (NetBSD): say what it is.
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return nil, &notRegularError{path: path, mode: fi.Mode()}
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &notRegularError{path: path, mode: fi.Mode()}
	}
	return f, nil
}

// notRegularError is the error of openRegular for a path that holds
// something other than a regular file.
type notRegularError struct {
	path string
	mode fs.FileMode // what is at path instead
}

func (e *notRegularError) Error() string {
	what := "not a regular file"
	switch t := e.mode.Type(); {
	case t&fs.ModeSymlink != 0:
		what = "a symbolic link (not followed), not a regular file"
	case t&fs.ModeDir != 0:
		what = "a directory, not a regular file"
	case t&fs.ModeNamedPipe != 0:
		what = "a named pipe, not a regular file"
	case t&fs.ModeSocket != 0:
		what = "a socket, not a regular file"
	case t&fs.ModeDevice != 0:
		what = "a device, not a regular file"
	}
	return e.path + " is " + what
}
