package filestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

// newStore returns a store in a fresh directory "store" of its own, and
// that directory.
func newStore(t testing.TB) (*filestore.Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, dir
}

// fileName is the name the store must give key's token file, computed here
// independently of the package.
func fileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + ".json"
}

// tok returns a token whose values all derive from name.
func tok(name string) *oauth2.Token {
	return &oauth2.Token{AccessToken: "access-" + name, TokenType: "Bearer", RefreshToken: "refresh-" + name}
}

// checkSame reports a difference between the exported fields (but Extra) of
// got and want.
func checkSame(t *testing.T, got, want *oauth2.Token) {
	t.Helper()
	if got == nil {
		t.Errorf("got nil token, want %q", want.AccessToken)
		return
	}
	if got.AccessToken != want.AccessToken || got.TokenType != want.TokenType ||
		got.RefreshToken != want.RefreshToken || got.ExpiresIn != want.ExpiresIn ||
		!got.Expiry.Equal(want.Expiry) {
		t.Errorf("got token %q/%q/%q/%v/%d, want %q/%q/%q/%v/%d",
			got.AccessToken, got.TokenType, got.RefreshToken, got.Expiry, got.ExpiresIn,
			want.AccessToken, want.TokenType, want.RefreshToken, want.Expiry, want.ExpiresIn)
	}
}

// record returns the content of the token file that a store writes for
// key's token tk.
func record(t testing.TB, key string, tk *oauth2.Token) []byte {
	t.Helper()
	s, dir := newStore(t)
	if err := s.Save(context.Background(), key, tk); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, fileName(key)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// strayFiles returns the names in dir that are not a key's file.
func strayFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[0-9a-f]{64}\.(json|extra|lock|wlock)$`)
	var stray []string
	for _, e := range entries {
		if !valid.MatchString(e.Name()) {
			stray = append(stray, e.Name())
		}
	}
	return stray
}

func TestRoundTrip(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	want := &oauth2.Token{
		AccessToken:  "at-1",
		TokenType:    "DPoP",
		RefreshToken: "rt-1",
		Expiry:       time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("X", 5400)),
		ExpiresIn:    3600,
	}
	want = want.WithExtra(map[string]any{"id_token": "kept"})
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkSame(t, got, want)
	if got.Expiry.Nanosecond() != 123456789 {
		t.Errorf("got expiry nanoseconds %d, want 123456789", got.Expiry.Nanosecond())
	}
	if x := got.Extra("id_token"); x != "kept" {
		t.Errorf("got Extra(id_token) %v, want kept (from the extras file; the token file holds only what it always did)", x)
	}

	var content map[string]any
	data, err := os.ReadFile(filepath.Join(dir, fileName("k")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &content); err != nil {
		t.Fatalf("file is not JSON: %v", err)
	}
	wantContent := map[string]any{
		"version":       1.0,
		"key":           "k",
		"access_token":  "at-1",
		"token_type":    "DPoP",
		"refresh_token": "rt-1",
		"expiry":        "2031-05-06T05:38:09.123456789Z",
		"expires_in":    3600.0,
	}
	for k, v := range wantContent {
		if content[k] != v {
			t.Errorf("file field %q: got %v, want %v", k, content[k], v)
		}
	}
	if len(content) != len(wantContent) {
		t.Errorf("file has %d fields, want %d: %s", len(content), len(wantContent), data)
	}

	// A zero expiry stays zero, and is not written.
	zero := &oauth2.Token{AccessToken: "at-2"}
	if err := s.Save(ctx, "k", zero); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err = s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkSame(t, got, zero)
	if !got.Expiry.IsZero() {
		t.Errorf("got expiry %v, want zero", got.Expiry)
	}
	data, err = os.ReadFile(filepath.Join(dir, fileName("k")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "expiry") {
		t.Errorf("file of a token without expiry has an expiry field: %s", data)
	}
}

func TestLoadMissing(t *testing.T) {
	s, _ := newStore(t)
	_, err := s.Load(context.Background(), "nobody")
	if !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load of a missing key: got %v, want ErrNotFound", err)
	}
}

func TestTwoStoresShareDirectory(t *testing.T) {
	s1, dir := newStore(t)
	s2, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s1.Save(ctx, "k", tok("1")); err != nil {
		t.Fatal(err)
	}
	got, err := s2.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, tok("1"))
}

func TestNew(t *testing.T) {
	if _, err := filestore.New(""); err == nil {
		t.Error("New(\"\"): got nil error")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.New(file); err == nil {
		t.Error("New(a regular file): got nil error")
	}

	// A relative directory is made absolute, so a later Chdir does not
	// move the store.
	s, err := filestore.New(".")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(s.Dir()) {
		t.Errorf("Dir() = %q, want an absolute path", s.Dir())
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no Unix permissions")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b")
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(base, "a"), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("directory %s created with mode %v, want 0700", d, perm)
		}
	}
	if err := s.Save(context.Background(), "k", tok("1")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("file %s has mode %v, want 0600", e.Name(), perm)
		}
	}

	// An existing directory keeps its permissions.
	shared := filepath.Join(base, "shared")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if _, err := filestore.New(shared); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(shared)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o755 {
		t.Errorf("existing directory changed to mode %v, want 0755 kept", perm)
	}
}

func TestOddKeys(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	keys := []string{
		"", " ", "k", "K", "key", "Key", "KEY", "key ", "../x", "..", ".", "/", "a/b",
		`a\b`, `C:\x`, "con", "NUL", "a:b", "é", "e\u0301", "日本語", "\U0001F600",
		"a\x00b", "\xff\xfe", "\xff\xfd", strings.Repeat("k", 1000), strings.Repeat("é", 1000),
	}
	for i, k := range keys {
		if err := s.Save(ctx, k, tok(fmt.Sprint(i))); err != nil {
			t.Fatalf("Save(%q): %v", k, err)
		}
	}
	for i, k := range keys {
		got, err := s.Load(ctx, k)
		if err != nil {
			t.Errorf("Load(%q): %v", k, err)
			continue
		}
		checkSame(t, got, tok(fmt.Sprint(i)))
		if _, err := os.Stat(filepath.Join(dir, fileName(k))); err != nil {
			t.Errorf("key %q: %v", k, err)
		}
	}
	if stray := strayFiles(t, dir); len(stray) > 0 {
		t.Errorf("unexpected files in the store: %q", stray)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	if n != len(keys) {
		t.Errorf("got %d token files, want %d", n, len(keys))
	}
	// Nothing escaped the directory.
	parent, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(parent) != 1 || parent[0].Name() != "store" {
		var names []string
		for _, e := range parent {
			names = append(names, e.Name())
		}
		t.Errorf("the store's parent holds %q, want only \"store\"", names)
	}
}

// secret is in every token value of the corrupt files: no error may show it.
const secret = "SECRET"

func TestCorruptFiles(t *testing.T) {
	ctx := context.Background()
	type corruption struct {
		name     string
		setup    func(t *testing.T, s *filestore.Store, path string)
		wantErr  error // besides not being ErrNotFound
		rootSkip bool
	}
	write := func(content string) func(t *testing.T, s *filestore.Store, path string) {
		return func(t *testing.T, s *filestore.Store, path string) {
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	valid := `{"version":1,"key":"k","access_token":"SECRET-a","token_type":"Bearer","refresh_token":"SECRET-r","expires_in":0}`
	cases := []corruption{
		{name: "empty", setup: write(""), wantErr: filestore.ErrCorrupt},
		{name: "truncated", setup: write(valid[:len(valid)/2]), wantErr: filestore.ErrCorrupt},
		{name: "truncated in token", setup: write(`{"version":1,"key":"k","access_token":"SECRET-a`), wantErr: filestore.ErrCorrupt},
		{name: "not JSON", setup: write("SECRET-a SECRET-r"), wantErr: filestore.ErrCorrupt},
		{name: "garbage after", setup: write(valid + "SECRET"), wantErr: filestore.ErrCorrupt},
		{name: "array", setup: write(`["SECRET-a"]`), wantErr: filestore.ErrCorrupt},
		{name: "string", setup: write(`"SECRET-a"`), wantErr: filestore.ErrCorrupt},
		{name: "null", setup: write(`null`), wantErr: filestore.ErrCorrupt},
		{name: "access_token number", setup: write(`{"version":1,"key":"k","access_token":12345,"refresh_token":"SECRET-r"}`), wantErr: filestore.ErrCorrupt},
		{name: "refresh_token object", setup: write(`{"version":1,"key":"k","access_token":"SECRET-a","refresh_token":{"v":"SECRET-r"}}`), wantErr: filestore.ErrCorrupt},
		{name: "expires_in string", setup: write(`{"version":1,"key":"k","access_token":"SECRET-a","expires_in":"SECRET"}`), wantErr: filestore.ErrCorrupt},
		{name: "version string", setup: write(`{"version":"1","key":"k","access_token":"SECRET-a"}`), wantErr: filestore.ErrCorrupt},
		{name: "no version", setup: write(`{"key":"k","access_token":"SECRET-a"}`), wantErr: filestore.ErrCorrupt},
		{name: "newer version", setup: write(`{"version":2,"key":"k","access_token":["SECRET-a"]}`), wantErr: filestore.ErrCorrupt},
		{name: "no key", setup: write(`{"version":1,"access_token":"SECRET-a"}`), wantErr: filestore.ErrCorrupt},
		{name: "no access_token", setup: write(`{"version":1,"key":"k","refresh_token":"SECRET-r"}`), wantErr: filestore.ErrCorrupt},
		{name: "bad expiry", setup: write(`{"version":1,"key":"k","access_token":"SECRET-a","expiry":"SECRET"}`), wantErr: filestore.ErrCorrupt},
		{name: "bad key_base64", setup: write(`{"version":1,"key":"k","key_base64":"SECRET!","access_token":"SECRET-a"}`), wantErr: filestore.ErrCorrupt},
		{name: "duplicate key", setup: write(`{"version":1,"key":"other","key":"k","access_token":"SECRET-a"}`), wantErr: filestore.ErrCorrupt},
		{name: "member in another case", setup: write(`{"version":1,"key":"k","Access_Token":"SECRET-a","access_token":"SECRET-b"}`), wantErr: filestore.ErrCorrupt},
		{name: "unknown member", setup: write(`{"version":1,"key":"k","access_token":"SECRET-a","SECRET":1}`), wantErr: filestore.ErrCorrupt},
		{name: "another key's file", setup: write(string(record(t, "other", tok(secret)))), wantErr: filestore.ErrCorrupt},
		{name: "directory", setup: func(t *testing.T, s *filestore.Store, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "symlink loop", setup: func(t *testing.T, s *filestore.Store, path string) {
			if runtime.GOOS == "windows" {
				t.Skip("symlinks need privileges on Windows")
			}
			if err := os.Symlink(filepath.Base(path), path); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "permission denied", setup: func(t *testing.T, s *filestore.Store, path string) {
			write(valid)(t, s, path)
			if err := os.Chmod(path, 0); err != nil {
				t.Fatal(err)
			}
		}, wantErr: fs.ErrPermission, rootSkip: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.rootSkip && (os.Geteuid() == 0 || runtime.GOOS == "windows") {
				t.Skip("file permissions do not restrict root (or Windows)")
			}
			s, _ := newStore(t)
			path := filepath.Join(s.Dir(), fileName("k"))
			c.setup(t, s, path)
			check := func(op string, err error) {
				t.Helper()
				switch {
				case err == nil:
					t.Fatalf("%s: got nil error", op)
				case errors.Is(err, refresh.ErrNotFound):
					t.Errorf("%s: got %v, want an error other than ErrNotFound", op, err)
				case errors.Is(err, refresh.ErrConflict):
					t.Errorf("%s: got %v, want an error other than ErrConflict", op, err)
				case c.wantErr != nil && !errors.Is(err, c.wantErr):
					t.Errorf("%s: got %v, want an error wrapping %v", op, err, c.wantErr)
				}
				// The file's path is no token value, and t.TempDir's
				// random digits in it may hold "12345".
				if msg := strings.ReplaceAll(err.Error(), s.Dir(), "<dir>"); strings.Contains(msg, secret) || strings.Contains(msg, "12345") {
					t.Errorf("%s: error shows a token value: %s", op, msg)
				}
				if !strings.Contains(err.Error(), fileName("k")) {
					t.Errorf("%s: error %q does not name the file %s", op, err, fileName("k"))
				}
			}
			got, err := s.Load(ctx, "k")
			if got != nil {
				t.Errorf("Load returned a token with an error")
			}
			check("Load", err)
			before, _ := os.ReadFile(path)
			check("CompareAndSwap", s.CompareAndSwap(ctx, "k", tok(secret), tok("new")))
			check("CompareAndSwap(nil)", s.CompareAndSwap(ctx, "k", nil, tok("new")))
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Errorf("CompareAndSwap changed a file it could not read")
			}
			t.Logf("Load error: %v", err)
		})
	}
}

func TestFailedSaveLeavesNoTemporaryFile(t *testing.T) {
	s, dir := newStore(t)
	// A directory in place of the token file: the rename fails.
	if err := os.Mkdir(filepath.Join(dir, fileName("k")), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileName("k"), "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(context.Background(), "k", tok("1")); err == nil {
		t.Fatal("Save over a directory: got nil error")
	}
	if stray := strayFiles(t, dir); len(stray) > 0 {
		t.Errorf("files left behind: %q", stray)
	}
}

// TestConcurrentSaves saves from many goroutines while others load: every
// Load sees one whole token, and no temporary file remains.
func TestConcurrentSaves(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", tok("init")); err != nil {
		t.Fatal(err)
	}
	const writers, saves, readers = 8, 25, 4
	var wg, rg sync.WaitGroup
	var done atomic.Bool
	var loads atomic.Int64
	for r := 0; r < readers; r++ {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for !done.Load() {
				got, err := s.Load(ctx, "k")
				if err != nil {
					t.Errorf("Load during saves: %v", err)
					return
				}
				name := strings.TrimPrefix(got.AccessToken, "access-")
				if got.RefreshToken != "refresh-"+name || got.TokenType != "Bearer" {
					t.Errorf("Load: got a mix of tokens: %q, %q", got.AccessToken, got.RefreshToken)
					return
				}
				loads.Add(1)
			}
		}()
	}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < saves; i++ {
				if err := s.Save(ctx, "k", tok(fmt.Sprintf("%d-%d", w, i))); err != nil {
					t.Errorf("Save: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	if _, err := s.Load(ctx, "k"); err != nil {
		t.Errorf("final Load: %v", err)
	}
	if stray := strayFiles(t, dir); len(stray) > 0 {
		t.Errorf("files left behind: %q", stray)
	}
	t.Logf("%d loads during %d saves", loads.Load(), writers*saves)
}

func TestCompareAndSwap(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a, b := tok("a"), tok("b")

	if err := s.CompareAndSwap(ctx, "k", a, b); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("CompareAndSwap(a, b) with nothing stored: got %v, want ErrConflict", err)
	}
	if err := s.CompareAndSwap(ctx, "k", nil, a); err != nil {
		t.Fatalf("CompareAndSwap(nil, a) with nothing stored: %v", err)
	}
	if err := s.CompareAndSwap(ctx, "k", nil, b); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("CompareAndSwap(nil, b) with a stored: got %v, want ErrConflict", err)
	}
	// Only AccessToken and RefreshToken are compared.
	aLater := tok("a")
	aLater.Expiry = time.Now().Add(time.Hour)
	aLater.TokenType = "other"
	if err := s.CompareAndSwap(ctx, "k", aLater, b); err != nil {
		t.Fatalf("CompareAndSwap(a, b) with a stored: %v", err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, b)
	// A stale old token is refused, and nothing changes.
	if err := s.CompareAndSwap(ctx, "k", a, tok("c")); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("CompareAndSwap(a, c) with b stored: got %v, want ErrConflict", err)
	}
	sameAccess := &oauth2.Token{AccessToken: b.AccessToken, RefreshToken: "other"}
	if err := s.CompareAndSwap(ctx, "k", sameAccess, tok("c")); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("CompareAndSwap with the right access token but another refresh token: got %v, want ErrConflict", err)
	}
	got, err = s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, b)
	if err := s.CompareAndSwap(ctx, "k", b, nil); err == nil {
		t.Error("CompareAndSwap(b, nil): got nil error")
	}
	if err := s.Save(ctx, "k", nil); err == nil {
		t.Error("Save(nil): got nil error")
	}
}

func TestCompareAndSwapRace(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.Save(ctx, "k", tok("A")); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wins atomic.Int32
	winner := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			err := s.CompareAndSwap(ctx, "k", tok("A"), tok(fmt.Sprint("X", i)))
			switch {
			case err == nil:
				wins.Add(1)
				winner <- i
			case !errors.Is(err, refresh.ErrConflict):
				t.Errorf("CompareAndSwap: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d of %d racing CompareAndSwap succeeded, want 1", w, n)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	checkSame(t, got, tok(fmt.Sprint("X", <-winner)))
}

func TestCancelledContext(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Load(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Load: got %v, want context.Canceled", err)
	}
	if err := s.Save(ctx, "k", tok("1")); !errors.Is(err, context.Canceled) {
		t.Errorf("Save: got %v, want context.Canceled", err)
	}
	if err := s.CompareAndSwap(ctx, "k", nil, tok("1")); !errors.Is(err, context.Canceled) {
		t.Errorf("CompareAndSwap: got %v, want context.Canceled", err)
	}
	if _, err := s.Load(context.Background(), "k"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load after cancelled writes: got %v, want ErrNotFound", err)
	}
}
