package sealed_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/sealed"
	"golang.org/x/oauth2"
)

func nameSecret(t *testing.T) []byte {
	return newKey(t, "names").Secret
}

func mustHide(t *testing.T, next refresh.TokenStore, secret []byte) refresh.TokenStore {
	t.Helper()
	s, err := sealed.HideKeys(next, secret)
	if err != nil {
		t.Fatalf("HideKeys: %v", err)
	}
	return s
}

// namesBackend records every key the wrapper hands the backend.
type namesBackend struct {
	refresh.MemoryStore
	mu   sync.Mutex
	seen []string
}

func (b *namesBackend) see(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seen = append(b.seen, key)
}

func (b *namesBackend) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	b.see(key)
	return b.MemoryStore.Load(ctx, key)
}

func (b *namesBackend) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	b.see(key)
	return b.MemoryStore.Save(ctx, key, tok)
}

func (b *namesBackend) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	b.see(key)
	return b.MemoryStore.CompareAndSwap(ctx, key, old, new)
}

func (b *namesBackend) Lock(ctx context.Context, key string) (func(), error) {
	b.see(key)
	return func() {}, nil
}

var hexName = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestHideKeysNames: every operation on a key reaches the backend under one
// name, 64 hex digits unrelated to the key; distinct keys and distinct
// secrets give distinct names, and the same secret the same names.
func TestHideKeysNames(t *testing.T) {
	ctx := t.Context()
	secret := nameSecret(t)
	names := func(secret []byte, key string) []string {
		t.Helper()
		b := &namesBackend{}
		s := mustHide(t, b, secret)
		if err := s.Save(ctx, key, tokenN(1)); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if _, err := s.Load(ctx, key); err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := s.(refresh.CompareAndSwapper).CompareAndSwap(ctx, key, tokenN(1), tokenN(2)); err != nil {
			t.Fatalf("CompareAndSwap: %v", err)
		}
		unlock, err := s.(refresh.Locker).Lock(ctx, key)
		if err != nil {
			t.Fatalf("Lock: %v", err)
		}
		unlock()
		return b.seen
	}
	keys := []string{"alice@example.com", "alice@example.co", "", "\x00\xff", strings.Repeat("k", 1000)}
	byName := map[string]string{}
	for _, key := range keys {
		seen := names(secret, key)
		if len(seen) != 4 {
			t.Fatalf("key %q: backend saw %d calls, want 4", key, len(seen))
		}
		for _, n := range seen {
			if n != seen[0] {
				t.Errorf("key %q reached the backend as %q and %q", key, seen[0], n)
			}
		}
		name := seen[0]
		if !hexName.MatchString(name) || key != "" && strings.Contains(name, key) {
			t.Errorf("key %q: backend name %q, want 64 hex digits", key, name)
		}
		if prev, dup := byName[name]; dup {
			t.Errorf("keys %q and %q share the name %q", prev, key, name)
		}
		byName[name] = key
		if again := names(secret, key)[0]; again != name {
			t.Errorf("key %q: a second store with the same secret names it %q, then %q", key, name, again)
		}
		if other := names(nameSecret(t), key)[0]; other == name {
			t.Errorf("key %q: two secrets give the same name %q", key, name)
		}
	}
}

// TestHideKeysFilestore: with filestore as the backend, the files hold
// neither the store key nor the token.
func TestHideKeysFilestore(t *testing.T) {
	dir := t.TempDir()
	fs, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustNew(t, mustHide(t, fs, nameSecret(t)), newKey(t, "k1"))
	const key = "alice@example.com"
	if err := s.Save(t.Context(), key, sampleToken()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkSame(t, got, sampleToken())
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) == 0 {
		t.Fatal("filestore wrote no file")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, leak := range []string{"alice", "example.com", plainAccess, plainRefresh} {
			if strings.Contains(string(data), leak) || strings.Contains(f, leak) {
				t.Errorf("file %s holds %q:\n%s", filepath.Base(f), leak, data)
			}
		}
	}
}

// TestHideKeysSealedCopy: sealing still binds the store key itself, not its
// name: a value copied to another user's name does not open.
func TestHideKeysSealedCopy(t *testing.T) {
	ctx := t.Context()
	b := &namesBackend{}
	s := mustNew(t, mustHide(t, b, nameSecret(t)), newKey(t, "k1"))
	if err := s.Save(ctx, "bob", tokenN(2)); err != nil {
		t.Fatal(err)
	}
	bobs := b.seen[len(b.seen)-1]
	if err := s.Save(ctx, "alice", tokenN(1)); err != nil {
		t.Fatal(err)
	}
	alices := b.seen[len(b.seen)-1]
	raw, err := b.MemoryStore.Load(ctx, bobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.MemoryStore.Save(ctx, alices, raw); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Load(ctx, "alice"); !errors.Is(err, sealed.ErrAuthentication) {
		t.Errorf("Load of bob's value under alice's name: got %v, %v; want ErrAuthentication", tok, err)
	}
}

func TestHideKeysRejects(t *testing.T) {
	secret := nameSecret(t)
	for _, tt := range []struct {
		name   string
		next   refresh.TokenStore
		secret []byte
	}{
		{"nil backend", nil, secret},
		{"no secret", &refresh.MemoryStore{}, nil},
		{"short secret", &refresh.MemoryStore{}, secret[:31]},
		{"zero secret", &refresh.MemoryStore{}, make([]byte, 32)},
	} {
		s, err := sealed.HideKeys(tt.next, tt.secret)
		if err == nil || s != nil {
			t.Errorf("%s: got %v, %v; want an error", tt.name, s, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "sealed: ") {
			t.Errorf("%s: error %q does not start with the package name", tt.name, err)
		}
		checkClean(t, tt.name, err.Error(), []sealed.Key{{Secret: secret}})
	}
	// A longer secret is fine, and the caller may reuse its slice.
	long := append(nameSecret(t), nameSecret(t)...)
	s := mustHide(t, &refresh.MemoryStore{}, long)
	if err := s.Save(t.Context(), "a", tokenN(1)); err != nil {
		t.Fatal(err)
	}
	clear(long)
	if _, err := s.Load(t.Context(), "a"); err != nil {
		t.Errorf("Load after the caller cleared the secret: %v", err)
	}
}

// TestHideKeysCapabilities: the result has Lock and CompareAndSwap exactly
// when the backend has.
func TestHideKeysCapabilities(t *testing.T) {
	for _, tt := range []struct {
		name              string
		backend           refresh.TokenStore
		wantLock, wantCAS bool
	}{
		{"plain", &plainBackend{}, false, false},
		{"locker", &lockingBackend{}, true, false},
		{"cas", &refresh.MemoryStore{}, false, true},
		{"locker+cas", &lockingCASBackend{}, true, true},
	} {
		for _, s := range []refresh.TokenStore{
			mustHide(t, tt.backend, nameSecret(t)),
			mustNew(t, mustHide(t, tt.backend, nameSecret(t)), newKey(t, "k1")),
		} {
			_, isLock := s.(refresh.Locker)
			_, isCAS := s.(refresh.CompareAndSwapper)
			if isLock != tt.wantLock || isCAS != tt.wantCAS {
				t.Errorf("%s: %T is Locker %v, CompareAndSwapper %v; want %v, %v", tt.name, s, isLock, isCAS, tt.wantLock, tt.wantCAS)
			}
		}
	}
}
