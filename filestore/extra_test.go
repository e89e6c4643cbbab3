package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/internal/tokenjson"
)

// extraName is the name of key's extras file.
func extraName(key string) string {
	return strings.TrimSuffix(fileName(key), ".json") + ".extra"
}

func withScope(t *oauth2.Token, scope string) *oauth2.Token {
	return t.WithExtra(map[string]any{"scope": scope, "id_token": "id-for-" + scope})
}

// TestExtraFile: a token's extras are in "<hash>.extra", the token file
// holds only what the releases before read (TestRoundTrip checks its
// members); a token without extras removes the extras file.
func TestExtraFile(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", withScope(tok("1"), "one")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, extraName("k")))
	if err != nil {
		t.Fatalf("no extras file: %v", err)
	}
	if strings.Contains(string(data), "access-1") || strings.Contains(string(data), "refresh-1") {
		t.Errorf("the extras file holds a token value")
	}
	if err := s.Save(ctx, "k", tok("2")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, extraName("k"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the extras file is still there after a token without extras was saved: %v", err)
	}
	if stray := strayFiles(t, dir); len(stray) > 0 {
		t.Errorf("stray files: %q", stray)
	}
}

// TestExtraOlderWriter: a process of the release before the extras saves a
// token by replacing the token file only, as that release does, and leaves
// the extras file of the token it replaced: this release must not take
// those extras for the new token's.
func TestExtraOlderWriter(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", withScope(tok("1"), "one")); err != nil {
		t.Fatal(err)
	}
	// What that release writes: tokenjson.Encode, indented (unchanged since).
	data, err := tokenjson.Encode("k", tok("2"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileName("k")), data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, tok("2"))
	if got.Extra("scope") != nil || got.Extra("id_token") != nil {
		t.Errorf("the token an older release saved got the extras of the token it replaced")
	}
}

// TestExtraPreviousEntry: the extras file also holds the previous token's
// entry, so that a Load that read the token file just before a Save
// replaced it still finds that token's extras (the extras file is written
// first).
func TestExtraPreviousEntry(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	one := withScope(tok("1"), "one")
	if err := s.Save(ctx, "k", one); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "k", withScope(tok("2"), "two")); err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(dir, extraName("k")))
	if err != nil {
		t.Fatal(err)
	}
	got, err := tokenjson.DecodeExtra("k", tok("1"), rec)
	if err != nil || got.Extra("scope") != "one" {
		t.Fatalf("the extras file has no entry for the previous token: %v, %v", got.Extra("scope"), err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || got.Extra("scope") != "two" {
		t.Fatalf("Load: scope %v, %v; want two", got.Extra("scope"), err)
	}
}

// TestExtraCorrupt: an extras file that is not one makes Load fail with
// ErrCorrupt, quoting nothing; a Save replaces it.
func TestExtraCorrupt(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", withScope(tok("1"), "one")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, extraName("k"))
	if err := os.WriteFile(path, []byte(`{"version":1,"tokens":"SECRET-VALUE-123"`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(ctx, "k")
	if !errors.Is(err, filestore.ErrCorrupt) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("Load over a corrupt extras file: %v; want ErrCorrupt, quoting nothing", err)
	}
	if err := s.CompareAndSwap(ctx, "k", tok("1"), withScope(tok("2"), "two")); err != nil {
		t.Fatalf("CompareAndSwap over a corrupt extras file: %v", err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || got.Extra("scope") != "two" {
		t.Fatalf("Load after the swap: scope %v, %v; want two", got.Extra("scope"), err)
	}
	// A link in place of the extras file is not followed.
	os.Remove(path)
	if err := os.Symlink(filepath.Join(dir, fileName("k")), path); err != nil {
		t.Skip("no symbolic links here")
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, filestore.ErrCorrupt) {
		t.Fatalf("Load with a link as the extras file: %v; want ErrCorrupt", err)
	}
	var _ refresh.TokenStore = s
}
