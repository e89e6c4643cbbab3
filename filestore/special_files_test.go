//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

// These tests put what a store never writes (a named pipe, a symbolic link
// to a file, a device or a directory elsewhere) where it expects one of its
// files, and check that it opens none of them: it neither blocks on a pipe
// nor reads, creates or opens for writing anything outside its directory.

// watchdog turns a hang into a failure. Nothing here waits for it unless an
// operation hangs: it is not a timing assertion, only far longer than any
// open or read of a small file takes, however loaded the machine.
const watchdog = 20 * time.Second

// noHang runs op in a goroutine and returns its error. If op has not
// returned after watchdog, noHang fails the test, and then calls release
// until op returns, so that no goroutine is left blocked.
func noHang(t *testing.T, what string, release func(), op func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- op() }()
	timer := time.NewTimer(watchdog)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
	}
	t.Errorf("%s has not returned after %v: it blocks", what, watchdog)
	for range 1000 {
		release()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("%s still blocks after release", what)
	return nil
}

// mkfifo makes a named pipe at path.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
}

// releaseFIFO lets a reader blocked opening the named pipe at path go on:
// it opens the pipe for writing and closes it at once, so the reader reads
// an empty file. Opening for writing without blocking fails if no reader is
// waiting, and then there is nothing to release.
func releaseFIFO(path string) func() {
	return func() {
		if f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	}
}

// TestFIFOTokenFile: a named pipe in place of the token file is refused at
// once as corrupt; opening it for reading would block until a writer came.
func TestFIFOTokenFile(t *testing.T) {
	ops := []struct {
		name string
		run  func(s *filestore.Store) error
	}{
		{"Load", func(s *filestore.Store) error {
			_, err := s.Load(context.Background(), "k")
			return err
		}},
		{"CompareAndSwap", func(s *filestore.Store) error {
			return s.CompareAndSwap(context.Background(), "k", tok("old"), tok("new"))
		}},
		{"CompareAndSwap(nil)", func(s *filestore.Store) error {
			return s.CompareAndSwap(context.Background(), "k", nil, tok("new"))
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			s, dir := newStore(t)
			path := filepath.Join(dir, fileName("k"))
			mkfifo(t, path)
			err := noHang(t, op.name, releaseFIFO(path), func() error { return op.run(s) })
			if !errors.Is(err, filestore.ErrCorrupt) {
				t.Errorf("%s of a named pipe: got %v, want an error wrapping ErrCorrupt", op.name, err)
			}
			if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
				t.Errorf("the named pipe was replaced: %v, %v", fi, err)
			}
		})
	}
}

// outside is what a symbolic link in the store points to, outside the
// store's directory.
type outside struct {
	name string
	// make creates the target in dir and returns its path.
	make func(t *testing.T, dir string) string
	// check fails the test if the target was created, changed or removed.
	check func(t *testing.T, path string)
}

// outsides returns the targets of the links: a regular file holding
// content, a path where nothing exists, a device and a directory.
func outsides(content []byte) []outside {
	return []outside{
		{
			name: "file",
			make: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "file")
				if err := os.WriteFile(path, content, 0o600); err != nil {
					t.Fatal(err)
				}
				return path
			},
			check: func(t *testing.T, path string) {
				t.Helper()
				if data, err := os.ReadFile(path); err != nil || string(data) != string(content) {
					t.Errorf("the link's target was changed: %q, %v", data, err)
				}
			},
		},
		{
			name: "nothing",
			make: func(t *testing.T, dir string) string { return filepath.Join(dir, "nothing") },
			check: func(t *testing.T, path string) {
				t.Helper()
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("the link's target was created: %v", err)
				}
			},
		},
		{
			name: "/dev/null",
			make: func(t *testing.T, dir string) string { return os.DevNull },
			check: func(t *testing.T, path string) {
				t.Helper()
				if fi, err := os.Stat(path); err != nil || fi.Mode().Type()&fs.ModeDevice == 0 {
					t.Errorf("%s is no longer a device: %v, %v", path, fi, err)
				}
			},
		},
		{
			name: "directory",
			make: func(t *testing.T, dir string) string {
				path := filepath.Join(dir, "dir")
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
				return path
			},
			check: func(t *testing.T, path string) {
				t.Helper()
				if entries, err := os.ReadDir(path); err != nil || len(entries) > 0 {
					t.Errorf("the link's target directory was changed: %v, %v", entries, err)
				}
			},
		},
	}
}

// symlinkTo puts a symbolic link at path to target and returns a function
// that fails the test unless the link is still there, unchanged.
func symlinkTo(t *testing.T, target, path string) (checkLink func()) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if got, err := os.Readlink(path); err != nil || got != target {
			t.Errorf("the link %s was replaced or removed: %q, %v", filepath.Base(path), got, err)
		}
	}
}

// checkRefusedLink fails the test unless err refuses a symbolic link.
func checkRefusedLink(t *testing.T, op string, err error) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("%s through a symbolic link: got %v, want an error saying it is a symbolic link", op, err)
	}
}

// TestSymlinkTokenFile: Load and CompareAndSwap refuse a symbolic link in
// place of the token file, wherever it points, as corrupt; Save replaces the
// link itself with a token file.
func TestSymlinkTokenFile(t *testing.T) {
	ctx := context.Background()
	// A record that Load would accept for the key, were it to follow the
	// link to the file.
	for _, o := range outsides(record(t, "k", tok(secret))) {
		t.Run(o.name, func(t *testing.T) {
			s, dir := newStore(t)
			target := o.make(t, t.TempDir())
			path := filepath.Join(dir, fileName("k"))
			checkLink := symlinkTo(t, target, path)

			got, err := s.Load(ctx, "k")
			if got != nil {
				t.Errorf("Load followed the link and returned a token")
			}
			checkRefused := func(op string, err error) {
				t.Helper()
				checkRefusedLink(t, op, err)
				if !errors.Is(err, filestore.ErrCorrupt) {
					t.Errorf("%s: got %v, want an error wrapping ErrCorrupt", op, err)
				}
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("%s: error shows a token value: %v", op, err)
				}
			}
			checkRefused("Load", err)
			checkRefused("CompareAndSwap", s.CompareAndSwap(ctx, "k", tok(secret), tok("new")))
			checkRefused("CompareAndSwap(nil)", s.CompareAndSwap(ctx, "k", nil, tok("new")))
			checkLink()
			o.check(t, target)

			// rename(2) replaces the link, not what it points to.
			if err := s.Save(ctx, "k", tok("saved")); err != nil {
				t.Fatalf("Save over a link: %v", err)
			}
			if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
				t.Errorf("Save over a link: the token file is %v, %v; want a regular file", fi, err)
			}
			o.check(t, target)
			got, err = s.Load(ctx, "k")
			if err != nil {
				t.Fatalf("Load after Save: %v", err)
			}
			checkSame(t, got, tok("saved"))
		})
	}
}

// TestSymlinkLockFiles: a symbolic link in place of a lock file is refused,
// wherever it points: the store neither creates its target nor opens it.
func TestSymlinkLockFiles(t *testing.T) {
	for _, o := range outsides([]byte("not the store's: leave it alone\n")) {
		t.Run(o.name, func(t *testing.T) {
			testLockFiles(t, func(t *testing.T, path string) (check func()) {
				target := o.make(t, t.TempDir())
				checkLink := symlinkTo(t, target, path)
				return func() {
					t.Helper()
					checkLink()
					o.check(t, target)
				}
			}, func(t *testing.T, op string, err error) {
				t.Helper()
				checkRefusedLink(t, op, err)
			})
		})
	}
}

// TestFIFOLockFiles: a named pipe in place of a lock file is refused too.
func TestFIFOLockFiles(t *testing.T) {
	testLockFiles(t, func(t *testing.T, path string) (check func()) {
		mkfifo(t, path)
		return func() {
			t.Helper()
			if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
				t.Errorf("the named pipe was replaced: %v, %v", fi, err)
			}
		}
	}, func(t *testing.T, op string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s with a named pipe as lock file: got %v, want an error saying it is not a regular file", op, err)
		}
	})
}

// testLockFiles puts something (made by plant, which returns a check that
// it is unchanged) in place of the key's refresh lock file, then of its
// write lock file, and checks that what needs that lock fails (checkErr)
// without waiting or writing a token.
func testLockFiles(t *testing.T, plant func(t *testing.T, path string) (check func()), checkErr func(t *testing.T, op string, err error)) {
	ops := []struct {
		name string
		ext  string
		run  func(ctx context.Context, s *filestore.Store) error
	}{
		{"Lock", ".lock", func(ctx context.Context, s *filestore.Store) error {
			unlock, err := s.Lock(ctx, "k")
			if err == nil {
				unlock()
			}
			return err
		}},
		{"TryLock", ".lock", func(ctx context.Context, s *filestore.Store) error {
			unlock, ok, err := s.TryLock(ctx, "k")
			if ok {
				unlock()
			}
			return err
		}},
		{"Save", ".wlock", func(ctx context.Context, s *filestore.Store) error {
			return s.Save(ctx, "k", tok("new"))
		}},
		{"CompareAndSwap", ".wlock", func(ctx context.Context, s *filestore.Store) error {
			return s.CompareAndSwap(ctx, "k", nil, tok("new"))
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			s, dir := newStore(t)
			path := filepath.Join(dir, strings.TrimSuffix(fileName("k"), ".json")+op.ext)
			check := plant(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), watchdog)
			defer cancel()
			err := noHang(t, op.name, releaseFIFO(path), func() error { return op.run(ctx, s) })
			checkErr(t, op.name, err)
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s waited for its context to end", op.name)
			}
			check()
			if _, err := s.Load(context.Background(), "k"); !errors.Is(err, refresh.ErrNotFound) {
				t.Errorf("after a refused %s, Load: got %v, want ErrNotFound", op.name, err)
			}
		})
	}
}

// TestSyncDirFIFO: flushing the directory after a rename does not block if
// the directory was replaced by a named pipe in the meantime; it fails.
func TestSyncDirFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	mkfifo(t, path)
	err := noHang(t, "syncDir", releaseFIFO(path), func() error { return filestore.SyncDir(path) })
	if err == nil {
		t.Errorf("syncDir of a named pipe: got nil error")
	}
}
