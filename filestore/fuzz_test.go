package filestore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/internal/tokenjson/tokenjsontest"
)

// FuzzLoad writes arbitrary bytes as a key's token file. Load must never
// panic, return a token only for the key the record is for and as its
// members say, and otherwise fail with an error wrapping ErrCorrupt that
// neither depends on nor shows the token values in the file.
func FuzzLoad(f *testing.F) {
	for _, r := range tokenjsontest.Records() {
		f.Add(r.Key, r.Key+"x", record(f, r.Key, r.Tok))
	}
	f.Add("k", "other", []byte(`{"version":1,"key":"other","key":"k","access_token":"SECRET-a"}`))
	f.Add("\xffk", "k", []byte(`{"version":1,"key":"k","key_base64":"/2s=","access_token":"SECRET-a"}`))
	// One store for every input: a directory each would slow the fuzzer
	// down. Each input's files are removed after it.
	s, dir := newStore(f)
	load := func(t *testing.T, key string, data []byte) (*oauth2.Token, error) {
		path := filepath.Join(dir, fileName(key))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		return s.Load(context.Background(), key)
	}
	f.Fuzz(func(t *testing.T, key, other string, data []byte) {
		got, err := load(t, key, data)
		if err != nil {
			if got != nil {
				t.Errorf("Load returned a token with the error %v", err)
			}
			if !errors.Is(err, filestore.ErrCorrupt) {
				t.Fatalf("Load of a file: got %v, want an error wrapping ErrCorrupt", err)
			}
			tokenjsontest.CheckError(t, data, err, func(data []byte) error {
				_, err := load(t, key, data)
				return err
			})
			return
		}
		tokenjsontest.CheckAccepted(t, key, data, got)
		if other != key {
			if _, err := load(t, other, data); !errors.Is(err, filestore.ErrCorrupt) {
				t.Errorf("the file of key %q, as the file of key %q: got %v, want an error wrapping ErrCorrupt", key, other, err)
			}
		}
	})
}
