//go:build unix

package filestore

import (
	"io/fs"
	"os"
	"syscall"
)

// noFollowFlags are added to every open of a file of the store: the open
// fails on a symbolic link at the path rather than follow it (anywhere the
// process may write), does not wait for a writer if the path is a named
// pipe, and does not make a terminal the process's controlling one.
//
// O_NONBLOCK stays set on the open file; reads and writes of regular
// files ignore it.
const noFollowFlags = syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY

// openNoFollow opens path without following a symbolic link at it and
// without blocking; openRegular checks what it opened.
func openNoFollow(path string, flag int, perm fs.FileMode) (*os.File, error) {
	return os.OpenFile(path, flag|noFollowFlags, perm)
}

// dirFlags open the store's directory to flush it: without blocking, and
// failing on anything but a directory. A link to a directory is followed:
// the store's directory may be one (see New).
const dirFlags = syscall.O_NONBLOCK | syscall.O_DIRECTORY | syscall.O_NOCTTY
