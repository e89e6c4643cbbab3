package filestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
)

// replaceFile atomically replaces the file at path, in dir, with one
// holding data and mode 0600: it writes a temporary file in the same
// directory, flushes it, renames it over path and flushes the directory. A
// crash at any point leaves the old file or the new one, whole; at worst a
// temporary file stays behind. On any error the temporary file is removed.
//
// The caller holds the key's write lock, so no other Save of this key
// renames at the same time; readers need no lock, since rename is atomic.
func replaceFile(dir, path string, data []byte) error {
	// CreateTemp opens with O_CREATE|O_EXCL, which fails on anything at
	// its random name, a symbolic link included: it never follows one.
	f, err := os.CreateTemp(dir, filepath.Base(path)+tempMark+"*") // mode 0600
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			f.Close() // may be closed already; the error does not matter
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	// Flush the content before the rename makes it visible: otherwise a
	// crash could leave the new name pointing to an empty or partial file.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	// rename(2) replaces the directory entry at path: a symbolic link
	// there is replaced itself, and what it points to is left alone.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	renamed = true
	// Flush the directory so that the rename itself survives a crash.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("filestore: flush directory %s after replacing %s: %w", dir, filepath.Base(path), err)
	}
	return nil
}

// syncDir flushes the directory dir to disk.
func syncDir(dir string) error {
	switch runtime.GOOS {
	case "windows", "plan9", "js", "wasip1":
		// There is no way to flush a directory there; NTFS journals its
		// metadata, so a completed rename survives a crash anyway.
		return nil
	}
	// dir may be a symbolic link to a directory (see New), so this open
	// follows links; dirFlags keep it from blocking on anything else.
	d, err := os.OpenFile(dir, os.O_RDONLY|dirFlags, 0)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, syscall.EINVAL) {
		// Some file systems cannot flush a directory; there is nothing
		// more to do.
		return nil
	}
	return err
}
