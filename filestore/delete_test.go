package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

// TestDeleteFiles: Delete removes the key's token file, its extras file
// and the temporary files a crash left behind, and nothing of another
// key; the lock files stay.
func TestDeleteFiles(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	for _, k := range []string{"k", "other"} {
		if err := s.Save(ctx, k, withScope(tok(k), k)); err != nil {
			t.Fatal(err)
		}
		hash := strings.TrimSuffix(fileName(k), ".json")
		for _, name := range []string{hash + ".json.tmp-123", hash + ".extra.tmp-456"} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("left by a crash"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load after Delete: got %v, want ErrNotFound", err)
	}
	hash := strings.TrimSuffix(fileName("k"), ".json")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), hash) {
			left = append(left, strings.TrimPrefix(e.Name(), hash))
		}
	}
	want := []string{".wlock"}
	if _, err := os.Stat(filepath.Join(dir, hash+".lock")); err == nil {
		want = []string{".lock", ".wlock"}
	}
	if strings.Join(left, " ") != strings.Join(want, " ") {
		t.Errorf("files of the deleted key: got %q, want %q", left, want)
	}
	got, err := s.Load(ctx, "other")
	if err != nil {
		t.Fatalf("Load of another key: %v", err)
	}
	checkSame(t, got, tok("other"))
	if got.Extra("scope") != "other" {
		t.Errorf("another key's extras: scope is %v", got.Extra("scope"))
	}
	if n := len(strayFiles(t, dir)); n != 2 {
		t.Errorf("temporary files of another key: got %d, want 2", n)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Errorf("Delete of a deleted key: %v", err)
	}
}

// TestDeleteHoldsWriteLock: Delete waits for the key's write lock, the one
// CompareAndSwap holds across its check and its write, so the two never
// interleave; while it waits nothing is deleted.
func TestDeleteHoldsWriteLock(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", tok("1")); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.LockWrite(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Delete(short, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Delete while the write lock is held: got %v, want a deadline error", err)
	}
	if _, err := s.Load(ctx, "k"); err != nil {
		t.Errorf("Load after a Delete that gave up: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Delete(ctx, "k") }()
	select {
	case err := <-done:
		t.Fatalf("Delete returned %v while the write lock was held", err)
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("Delete after the write lock was released: %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load after Delete: got %v, want ErrNotFound", err)
	}
}

// TestDeleteLeavesLockHeld: a Delete while another Store holds the key's
// refresh lock leaves that lock held: the lock file is not removed, so no
// one can lock a new file of the same name meanwhile.
func TestDeleteLeavesLockHeld(t *testing.T) {
	s, dir := newStore(t)
	l, ok := any(s).(refresh.TryLocker)
	if !ok {
		t.Skip("no flock(2) on this platform")
	}
	ctx := context.Background()
	unlock, err := l.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if err := s.Save(ctx, "k", tok("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	other, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok, err := any(other).(refresh.TryLocker).TryLock(ctx, "k"); ok || err != nil {
		t.Errorf("TryLock after Delete while the lock was held: got %v, %v; want not ok", ok, err)
		if ok {
			u()
		}
	}
}

// TestDeleteSymlink: a symbolic link in place of the token file is removed
// itself; what it points to is left alone.
func TestDeleteSymlink(t *testing.T) {
	s, dir := newStore(t)
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("not the store's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, fileName("k"))); err != nil {
		t.Skipf("cannot make a symbolic link: %v", err)
	}
	if err := s.Delete(context.Background(), "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, fileName("k"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link is still there: %v", err)
	}
	if data, err := os.ReadFile(target); err != nil || string(data) != "not the store's" {
		t.Errorf("the link's target: %q, %v", data, err)
	}
}
