package sealed_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/sealed"
	"golang.org/x/oauth2"
)

// Plaintext token values used by the tests: none may reach the backend or
// an error message.
const (
	plainAccess  = "at-PLAINTEXT-access-0123456789"
	plainRefresh = "rt-PLAINTEXT-refresh-9876543210"
)

func sampleToken() *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  plainAccess,
		TokenType:    "Bearer",
		RefreshToken: plainRefresh,
		Expiry:       time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.FixedZone("CET", 3600)),
		ExpiresIn:    3600,
	}
}

func tokenN(n int) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  fmt.Sprintf("%s-%d", plainAccess, n),
		RefreshToken: fmt.Sprintf("%s-%d", plainRefresh, n),
	}
}

func newKey(t *testing.T, id string) sealed.Key {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	return sealed.Key{ID: id, Secret: secret}
}

func mustNew(t *testing.T, next refresh.TokenStore, current sealed.Key, old ...sealed.Key) refresh.TokenStore {
	t.Helper()
	s, err := sealed.New(next, current, old...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// leaks returns every spelling of the secrets of keys, and the plaintext
// tokens, that an output must not contain.
func leaks(keys []sealed.Key, extra ...string) []string {
	out := []string{plainAccess, plainRefresh}
	for _, k := range keys {
		s := k.Secret
		if len(s) == 0 {
			continue
		}
		out = append(out,
			string(s),
			hex.EncodeToString(s),
			strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s),
			base64.RawStdEncoding.EncodeToString(s),
			base64.URLEncoding.EncodeToString(s),
			base64.RawURLEncoding.EncodeToString(s),
			strings.Trim(fmt.Sprint(s), "[]"), // decimal bytes, as %v prints them
		)
	}
	for _, e := range extra {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

// checkClean fails the test if s contains a secret or a token.
func checkClean(t *testing.T, what, s string, keys []sealed.Key, extra ...string) {
	t.Helper()
	for _, l := range leaks(keys, extra...) {
		if strings.Contains(s, l) {
			t.Errorf("%s %q contains secret material or a token", what, s)
			return
		}
	}
}

func checkSame(t *testing.T, got, want *oauth2.Token) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil token, want %q", want.AccessToken)
	}
	if got.AccessToken != want.AccessToken {
		t.Errorf("AccessToken: got %q, want %q", got.AccessToken, want.AccessToken)
	}
	if got.TokenType != want.TokenType {
		t.Errorf("TokenType: got %q, want %q", got.TokenType, want.TokenType)
	}
	if got.RefreshToken != want.RefreshToken {
		t.Errorf("RefreshToken: got %q, want %q", got.RefreshToken, want.RefreshToken)
	}
	if !got.Expiry.Equal(want.Expiry) {
		t.Errorf("Expiry: got %q, want %q", got.Expiry.Format(time.RFC3339Nano), want.Expiry.Format(time.RFC3339Nano))
	}
	if got.ExpiresIn != want.ExpiresIn {
		t.Errorf("ExpiresIn: got %d, want %d", got.ExpiresIn, want.ExpiresIn)
	}
}

func loadRaw(t *testing.T, b refresh.TokenStore, key string) *oauth2.Token {
	t.Helper()
	raw, err := b.Load(t.Context(), key)
	if err != nil {
		t.Fatalf("backend Load(%q): %v", key, err)
	}
	return raw
}

func TestRoundTrip(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	for name, tok := range map[string]*oauth2.Token{
		"all fields": sampleToken(),
		"minimal":    {AccessToken: plainAccess},
		"no access":  {RefreshToken: plainRefresh},
		"utc expiry": {AccessToken: plainAccess, Expiry: time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC)},
		"non-ascii":  {AccessToken: plainAccess + "-é\x00\"", TokenType: "DPoP"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := s.Save(t.Context(), name, tok); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := s.Load(t.Context(), name)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			checkSame(t, got, tok)
		})
	}

	// Extra is sealed with the token, and the backend sees none of it.
	withExtra := sampleToken().WithExtra(map[string]any{"id_token": "x"})
	if err := s.Save(t.Context(), "extra", withExtra); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Load(t.Context(), "extra")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkSame(t, got, sampleToken())
	if v := got.Extra("id_token"); v != "x" {
		t.Errorf("Extra(id_token): got %q, want x", v)
	}
	if raw, _ := mem.Load(t.Context(), "extra"); raw.Extra("id_token") != nil {
		t.Errorf("the backend's token has an Extra(id_token) of its own")
	}
}

func TestSaveRejects(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	if err := s.Save(t.Context(), "a", nil); err == nil {
		t.Errorf("Save(nil): got nil error, want one")
	}
	far := sampleToken()
	far.Expiry = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	err := s.Save(t.Context(), "a", far)
	if err == nil {
		t.Fatalf("Save with year 10000: got nil error, want one")
	}
	checkClean(t, "error", err.Error(), []sealed.Key{k})
	if _, err := mem.Load(t.Context(), "a"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("backend after refused Save: got %v, want ErrNotFound", err)
	}
}

func TestBackendHoldsNoPlaintext(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	tok := sampleToken()
	if err := s.Save(t.Context(), "alice", tok); err != nil {
		t.Fatalf("Save: %v", err)
	}
	raw := loadRaw(t, mem, "alice")
	if !strings.HasPrefix(raw.AccessToken, "sealed1:k1:") {
		t.Errorf("raw AccessToken: got %q, want prefix %q", raw.AccessToken, "sealed1:k1:")
	}
	if raw.TokenType != "" || raw.RefreshToken != "" || !raw.Expiry.IsZero() || raw.ExpiresIn != 0 {
		t.Errorf("raw token has fields other than AccessToken: type %q, refresh %q, expiry %q, expires_in %d",
			raw.TokenType, raw.RefreshToken, raw.Expiry, raw.ExpiresIn)
	}
	for _, f := range []string{raw.AccessToken, raw.TokenType, raw.RefreshToken} {
		checkClean(t, "backend field", f, []sealed.Key{k})
	}
	payload := strings.TrimPrefix(raw.AccessToken, "sealed1:k1:")
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatalf("payload is not base64url without padding: %v", err)
	}
	if bytes.Contains(data, []byte(plainAccess)) || bytes.Contains(data, []byte(plainRefresh)) {
		t.Errorf("sealed bytes contain a plaintext token")
	}

	// Sealing is randomized: the same token sealed again differs.
	if err := s.Save(t.Context(), "alice", tok); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if again := loadRaw(t, mem, "alice"); again.AccessToken == raw.AccessToken {
		t.Errorf("two seals of one token: got %q twice, want different values", raw.AccessToken)
	}
}

func TestCopiedToAnotherKeyFails(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	if err := s.Save(t.Context(), "alice", sampleToken()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	raw := loadRaw(t, mem, "alice")
	if err := mem.Save(t.Context(), "bob", raw); err != nil {
		t.Fatalf("backend Save: %v", err)
	}
	tok, err := s.Load(t.Context(), "bob")
	if err == nil {
		t.Fatalf("Load of a value copied from another key: got %q, want an error", tok.AccessToken)
	}
	if !errors.Is(err, sealed.ErrAuthentication) || errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("got %q, want ErrAuthentication and not ErrNotFound", err)
	}
	for _, want := range []string{`"bob"`, `"k1"`, "failed authentication"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
	checkClean(t, "error", err.Error(), []sealed.Key{k}, raw.AccessToken)

	// The original still opens.
	if _, err := s.Load(t.Context(), "alice"); err != nil {
		t.Errorf("Load of the original: %v", err)
	}
}

func TestTampering(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	if err := s.Save(t.Context(), "a", sampleToken()); err != nil {
		t.Fatalf("Save: %v", err)
	}
	orig := loadRaw(t, mem, "a").AccessToken

	load := func(t *testing.T, sealedValue string) error {
		t.Helper()
		if err := mem.Save(t.Context(), "a", &oauth2.Token{AccessToken: sealedValue}); err != nil {
			t.Fatalf("backend Save: %v", err)
		}
		tok, err := s.Load(t.Context(), "a")
		if err == nil {
			t.Fatalf("Load of %q: got %q, want an error", sealedValue, tok.AccessToken)
		}
		if errors.Is(err, refresh.ErrNotFound) {
			t.Errorf("got %q, want an error that is not ErrNotFound", err)
		}
		checkClean(t, "error", err.Error(), []sealed.Key{k}, sealedValue)
		return err
	}

	// Any one character changed, anywhere: prefix, key ID, separator,
	// nonce, ciphertext, tag, padding bits.
	for i := range len(orig) {
		b := []byte(orig)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		err := load(t, string(b))
		if !errors.Is(err, sealed.ErrAuthentication) && !errors.Is(err, sealed.ErrNotSealed) && !errors.Is(err, sealed.ErrUnknownKeyID) {
			t.Errorf("byte %d changed: got %q, want one of the sealed sentinel errors", i, err)
		}
	}

	// One bit of the sealed bytes flipped: nonce, ciphertext, tag.
	id, payload, _ := strings.Cut(strings.TrimPrefix(orig, "sealed1:"), ":")
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 11, 12, len(data) / 2, len(data) - 1} {
		d := bytes.Clone(data)
		d[i] ^= 0x01
		err := load(t, "sealed1:"+id+":"+base64.RawURLEncoding.EncodeToString(d))
		if !errors.Is(err, sealed.ErrAuthentication) {
			t.Errorf("bit flipped in byte %d: got %q, want ErrAuthentication", i, err)
		}
	}

	// The last character of unpadded base64 may carry unused bits; a
	// value differing only there must not open either. Three lengths in a
	// row cover every length modulo 3.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for n := range 3 {
		tok := &oauth2.Token{AccessToken: plainAccess + strings.Repeat("x", n)}
		if err := s.Save(t.Context(), "a", tok); err != nil {
			t.Fatal(err)
		}
		v := loadRaw(t, mem, "a").AccessToken
		last := strings.IndexByte(alphabet, v[len(v)-1])
		err := load(t, v[:len(v)-1]+string(alphabet[last^1]))
		if !errors.Is(err, sealed.ErrAuthentication) {
			t.Errorf("low bit of the last character flipped (length %d): got %v, want ErrAuthentication", len(v), err)
		}
	}

	// Truncated, extended, or with a line break the decoder would skip.
	for _, v := range []string{
		"sealed1:k1:",
		"sealed1:k1:AAAA",
		orig[:len(orig)-4],
		orig + "AAAA",
		orig[:20] + "\n" + orig[20:],
	} {
		if err := load(t, v); !errors.Is(err, sealed.ErrAuthentication) {
			t.Errorf("Load of %q: got %q, want ErrAuthentication", v, err)
		}
	}

	// Put back, it opens.
	if err := mem.Save(t.Context(), "a", &oauth2.Token{AccessToken: orig}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(t.Context(), "a"); err != nil {
		t.Errorf("Load of the original: %v", err)
	}
}

func TestNotSealed(t *testing.T) {
	k := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k)
	for _, raw := range []*oauth2.Token{
		sampleToken(), // a plaintext token from before the wrapper
		{AccessToken: ""},
		{AccessToken: "sealed1:"},
		{AccessToken: "sealed1:k1"},
		{AccessToken: "sealed2:k1:AAAA"},
		{AccessToken: "sealed1:bad id:AAAA"},
		{AccessToken: plainAccess, RefreshToken: "sealed1:k1:AAAA"},
	} {
		if err := mem.Save(t.Context(), "a", raw); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(t.Context(), "a")
		if !errors.Is(err, sealed.ErrNotSealed) || errors.Is(err, refresh.ErrNotFound) {
			t.Errorf("Load of %q: got %v, want ErrNotSealed", raw.AccessToken, err)
			continue
		}
		if want := `sealed: key "a": stored token is not sealed`; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("got %q, want prefix %q", err, want)
		}
		checkClean(t, "error", err.Error(), []sealed.Key{k})
	}
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	mem := &refresh.MemoryStore{}
	s1 := mustNew(t, mem, k1)
	tok := sampleToken()
	if err := s1.Save(t.Context(), "a", tok); err != nil {
		t.Fatalf("Save: %v", err)
	}

	// A process without k1 cannot open it, and says why.
	only2 := mustNew(t, mem, k2)
	_, err := only2.Load(t.Context(), "a")
	if !errors.Is(err, sealed.ErrUnknownKeyID) || errors.Is(err, refresh.ErrNotFound) {
		t.Fatalf("Load without k1: got %v, want ErrUnknownKeyID", err)
	}
	if want := `sealed: key "a": token sealed with unknown key id "k1"`; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %q, want prefix %q", err, want)
	}
	checkClean(t, "error", err.Error(), []sealed.Key{k1, k2})

	// Rotated: k2 current, k1 kept for reading.
	s2 := mustNew(t, mem, k2, k1)
	got, err := s2.Load(t.Context(), "a")
	if err != nil {
		t.Fatalf("Load with k1 as old key: %v", err)
	}
	checkSame(t, got, tok)
	if err := s2.Save(t.Context(), "a", got); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if raw := loadRaw(t, mem, "a"); !strings.HasPrefix(raw.AccessToken, "sealed1:k2:") {
		t.Errorf("raw after Save with k2 current: got %q, want prefix %q", raw.AccessToken, "sealed1:k2:")
	}
	got, err = only2.Load(t.Context(), "a")
	if err != nil {
		t.Fatalf("Load re-sealed token without k1: %v", err)
	}
	checkSame(t, got, tok)

	// The old process, which knows only k1, now meets k2.
	if _, err := s1.Load(t.Context(), "a"); !errors.Is(err, sealed.ErrUnknownKeyID) || !strings.Contains(err.Error(), `unknown key id "k2"`) {
		t.Errorf("Load with k1 only: got %v, want unknown key id %q", err, "k2")
	}

	// The same ID with another secret is a wrong key, not an unknown one.
	other1 := mustNew(t, mem, newKey(t, "k2"))
	_, err = other1.Load(t.Context(), "a")
	if !errors.Is(err, sealed.ErrAuthentication) {
		t.Errorf("Load with another secret under ID k2: got %v, want ErrAuthentication", err)
	}
}

func TestBackendErrorsPassThrough(t *testing.T) {
	k := newKey(t, "k1")
	s := mustNew(t, &refresh.MemoryStore{}, k)
	_, err := s.Load(t.Context(), "nobody")
	if !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load of a missing key: got %v, want ErrNotFound", err)
	}

	boom := errors.New("backend: disk on fire")
	f := &failingBackend{err: boom}
	s = mustNew(t, f, k)
	if _, err := s.Load(t.Context(), "a"); !errors.Is(err, boom) {
		t.Errorf("Load: got %v, want %v", err, boom)
	}
	if err := s.Save(t.Context(), "a", sampleToken()); !errors.Is(err, boom) {
		t.Errorf("Save: got %v, want %v", err, boom)
	}

	// A backend that returns neither a token nor an error.
	f.err = nil
	_, err = s.Load(t.Context(), "a")
	if err == nil || errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load of (nil, nil): got %v, want an error that is not ErrNotFound", err)
	}
}

func TestNewRejects(t *testing.T) {
	good := newKey(t, "good")
	secretID := base64.RawURLEncoding.EncodeToString(newKey(t, "x").Secret) // a secret pasted as an ID
	zero := sealed.Key{ID: "zero", Secret: make([]byte, 32)}
	short := newKey(t, "short")
	short.Secret = short.Secret[:16]
	long := sealed.Key{ID: "long", Secret: append(newKey(t, "x").Secret, 1)}
	same := sealed.Key{ID: "same", Secret: bytes.Clone(good.Secret)}
	mem := &refresh.MemoryStore{}

	tests := []struct {
		name    string
		next    refresh.TokenStore
		current sealed.Key
		old     []sealed.Key
		want    string
	}{
		{"nil backend", nil, good, nil, "nil backend"},
		{"16-byte secret", mem, short, nil, `key "short": secret is 16 bytes, want 32`},
		{"33-byte secret", mem, long, nil, `key "long": secret is 33 bytes, want 32`},
		{"nil secret", mem, sealed.Key{ID: "nil"}, nil, `key "nil": secret is 0 bytes, want 32`},
		{"zero secret", mem, zero, nil, `key "zero": secret is all zero bytes`},
		{"empty ID", mem, sealed.Key{Secret: good.Secret}, nil, "current key: empty ID"},
		{"colon in ID", mem, sealed.Key{ID: "a:b", Secret: good.Secret}, nil, "current key: ID has a character"},
		{"space in ID", mem, sealed.Key{ID: "a b", Secret: good.Secret}, nil, "current key: ID has a character"},
		{"non-ASCII ID", mem, sealed.Key{ID: "clé", Secret: good.Secret}, nil, "current key: ID has a character"},
		{"control in ID", mem, sealed.Key{ID: "a\n", Secret: good.Secret}, nil, "current key: ID has a character"},
		{"long ID", mem, sealed.Key{ID: secretID, Secret: good.Secret}, nil, "current key: ID is 43 bytes, want at most 32"},
		{"bad old key", mem, good, []sealed.Key{newKey(t, "k1"), short}, `key "short": secret is 16 bytes`},
		{"bad old ID", mem, good, []sealed.Key{newKey(t, "k1"), {Secret: good.Secret}}, "old key 2: empty ID"},
		{"duplicate current", mem, good, []sealed.Key{newKey(t, "good")}, `duplicate key id "good"`},
		{"duplicate old", mem, good, []sealed.Key{newKey(t, "k1"), newKey(t, "k1")}, `duplicate key id "k1"`},
		{"same secret", mem, good, []sealed.Key{same}, `keys "good" and "same" have the same secret`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := sealed.New(tt.next, tt.current, tt.old...)
			if err == nil {
				t.Fatalf("got store %T, want an error containing %q", s, tt.want)
			}
			if s != nil {
				t.Errorf("got store %T with the error, want nil", s)
			}
			if !strings.HasPrefix(err.Error(), "sealed: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want %q in a message that starts with %q", err, tt.want, "sealed: ")
			}
			keys := append([]sealed.Key{tt.current, good, short, long}, tt.old...)
			checkClean(t, "error", err.Error(), keys, secretID)
		})
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k := newKey(t, "k1")
	wrapped := struct{ K sealed.Key }{k}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%o", "%b", "%c", "%U"} {
		outs = append(outs, fmt.Sprintf(verb, k), fmt.Sprintf(verb, &k), fmt.Sprintf(verb, wrapped), fmt.Sprintf(verb, []sealed.Key{k}))
	}
	outs = append(outs, fmt.Sprint(k), fmt.Sprintln(k), k.String())
	for _, newHandler := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(newHandler(&b)).Info("key", "key", k, "wrapped", wrapped)
		outs = append(outs, b.String())
	}
	for _, out := range outs {
		checkClean(t, "output", out, []sealed.Key{k})
	}
	if got, want := fmt.Sprint(k), `sealed.Key{ID:"k1" Secret:[redacted]}`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Redacted on the way out only: a key can still be read from JSON.
	var in sealed.Key
	if err := json.Unmarshal([]byte(`{"ID":"k9","Secret":"`+base64.StdEncoding.EncodeToString(k.Secret)+`"}`), &in); err != nil {
		t.Fatal(err)
	}
	if in.ID != "k9" || !bytes.Equal(in.Secret, k.Secret) {
		t.Errorf("unmarshalled key: got ID %q and a different secret, want %q and the same", in.ID, "k9")
	}
}

// Fake backends, one per combination of capabilities. plainBackend holds
// its MemoryStore in a field: embedded, it would promote CompareAndSwap.
type plainBackend struct{ m refresh.MemoryStore }

func (b *plainBackend) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return b.m.Load(ctx, key)
}

func (b *plainBackend) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return b.m.Save(ctx, key, tok)
}

// lockCounter is a fake Lock that counts its calls.
type lockCounter struct {
	locks, unlocks atomic.Int32
}

func (c *lockCounter) Lock(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fake lock of %q: %w", key, err)
	}
	c.locks.Add(1)
	return func() { c.unlocks.Add(1) }, nil
}

type lockingBackend struct {
	plainBackend
	lockCounter
}

type lockingCASBackend struct {
	refresh.MemoryStore
	lockCounter
}

type failingBackend struct{ err error }

func (b *failingBackend) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	return nil, b.err
}

func (b *failingBackend) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return b.err
}

func TestCapabilities(t *testing.T) {
	lb, lcb := &lockingBackend{}, &lockingCASBackend{}
	tests := []struct {
		name              string
		backend           refresh.TokenStore
		counter           *lockCounter
		wantLock, wantCAS bool
	}{
		{"plain", &plainBackend{}, nil, false, false},
		{"locker", lb, &lb.lockCounter, true, false},
		{"cas", &refresh.MemoryStore{}, nil, false, true},
		{"locker+cas", lcb, &lcb.lockCounter, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The fakes themselves must have exactly these capabilities.
			_, bl := tt.backend.(refresh.Locker)
			_, bc := tt.backend.(refresh.CompareAndSwapper)
			if bl != tt.wantLock || bc != tt.wantCAS {
				t.Fatalf("fake backend: Locker %v, CompareAndSwapper %v; want %v, %v", bl, bc, tt.wantLock, tt.wantCAS)
			}

			s := mustNew(t, tt.backend, newKey(t, "k1"))
			l, isLock := s.(refresh.Locker)
			c, isCAS := s.(refresh.CompareAndSwapper)
			if isLock != tt.wantLock || isCAS != tt.wantCAS {
				t.Fatalf("wrapper %T: Locker %v, CompareAndSwapper %v; want %v, %v", s, isLock, isCAS, tt.wantLock, tt.wantCAS)
			}

			tok := sampleToken()
			if err := s.Save(t.Context(), "a", tok); err != nil {
				t.Fatalf("Save: %v", err)
			}
			got, err := s.Load(t.Context(), "a")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			checkSame(t, got, tok)
			if raw := loadRaw(t, tt.backend, "a"); !strings.HasPrefix(raw.AccessToken, "sealed1:k1:") {
				t.Errorf("raw: got %q, want prefix %q", raw.AccessToken, "sealed1:k1:")
			}

			if isLock {
				unlock, err := l.Lock(t.Context(), "a")
				if err != nil {
					t.Fatalf("Lock: %v", err)
				}
				if n := tt.counter.locks.Load(); n != 1 {
					t.Errorf("backend Lock calls: got %d, want 1", n)
				}
				unlock()
				if n := tt.counter.unlocks.Load(); n != 1 {
					t.Errorf("backend unlock calls: got %d, want 1", n)
				}
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				if _, err := l.Lock(ctx, "a"); !errors.Is(err, context.Canceled) {
					t.Errorf("Lock with a cancelled context: got %v, want context.Canceled", err)
				}
			}
			if isCAS {
				next := tokenN(1)
				if err := c.CompareAndSwap(t.Context(), "a", tok, next); err != nil {
					t.Fatalf("CompareAndSwap: %v", err)
				}
				got, err := s.Load(t.Context(), "a")
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				checkSame(t, got, next)
			}
		})
	}
}

func TestCompareAndSwap(t *testing.T) {
	k1 := newKey(t, "k1")
	mem := &refresh.MemoryStore{}
	s := mustNew(t, mem, k1)
	c := s.(refresh.CompareAndSwapper)
	ctx := t.Context()
	t1, t2, t3 := tokenN(1), tokenN(2), tokenN(3)
	keys := []sealed.Key{k1}

	expect := func(want *oauth2.Token) {
		t.Helper()
		got, err := s.Load(ctx, "a")
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		checkSame(t, got, want)
	}
	conflict := func(err error) {
		t.Helper()
		if !errors.Is(err, refresh.ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
			return
		}
		checkClean(t, "error", err.Error(), keys)
	}

	if err := c.CompareAndSwap(ctx, "a", nil, t1); err != nil {
		t.Fatalf("create with old nil: %v", err)
	}
	expect(t1)
	conflict(c.CompareAndSwap(ctx, "a", nil, t2)) // exists already
	expect(t1)
	if err := c.CompareAndSwap(ctx, "a", t1, t2); err != nil {
		t.Fatalf("swap: %v", err)
	}
	expect(t2)
	conflict(c.CompareAndSwap(ctx, "a", t1, t3)) // stale
	expect(t2)

	// SameToken: only AccessToken and RefreshToken count.
	t2other := &oauth2.Token{AccessToken: t2.AccessToken, RefreshToken: t2.RefreshToken, Expiry: time.Now(), TokenType: "x"}
	if err := c.CompareAndSwap(ctx, "a", t2other, t3); err != nil {
		t.Fatalf("swap with an old token equal in the SameToken sense: %v", err)
	}
	expect(t3)
	if raw := loadRaw(t, mem, "a"); !strings.HasPrefix(raw.AccessToken, "sealed1:k1:") {
		t.Errorf("raw after CompareAndSwap: got %q, want prefix %q", raw.AccessToken, "sealed1:k1:")
	}

	conflict(c.CompareAndSwap(ctx, "missing", t1, t2)) // nothing stored, old not nil
	if _, err := mem.Load(ctx, "missing"); !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("backend after a refused swap: got %v, want ErrNotFound", err)
	}

	if err := c.CompareAndSwap(ctx, "a", t3, nil); err == nil || errors.Is(err, refresh.ErrConflict) {
		t.Errorf("swap to nil: got %v, want an error that is not ErrConflict", err)
	}

	// A stored value that does not open is not a conflict: the store is
	// broken, and it stays untouched.
	if err := mem.Save(ctx, "plain", t1); err != nil {
		t.Fatal(err)
	}
	err := c.CompareAndSwap(ctx, "plain", t1, t2)
	if !errors.Is(err, sealed.ErrNotSealed) || errors.Is(err, refresh.ErrConflict) {
		t.Errorf("swap over a plaintext value: got %v, want ErrNotSealed", err)
	} else {
		checkClean(t, "error", err.Error(), keys)
	}
	if raw := loadRaw(t, mem, "plain"); raw.AccessToken != t1.AccessToken {
		t.Errorf("plaintext value after refused swap: got %q, want %q", raw.AccessToken, t1.AccessToken)
	}

	// After a rotation, a swap opens the old seal and writes the new one.
	k2 := newKey(t, "k2")
	s = mustNew(t, mem, k2, k1) // expect loads through s
	c2 := s.(refresh.CompareAndSwapper)
	if err := c2.CompareAndSwap(ctx, "a", t3, t1); err != nil {
		t.Fatalf("swap after rotation: %v", err)
	}
	if raw := loadRaw(t, mem, "a"); !strings.HasPrefix(raw.AccessToken, "sealed1:k2:") {
		t.Errorf("raw after swap with k2 current: got %q, want prefix %q", raw.AccessToken, "sealed1:k2:")
	}
	expect(t1)
}

func TestCompareAndSwapRace(t *testing.T) {
	const n = 16
	for _, initial := range []*oauth2.Token{nil, tokenN(100)} {
		name := "create"
		if initial != nil {
			name = "swap"
		}
		t.Run(name, func(t *testing.T) {
			mem := &refresh.MemoryStore{}
			s := mustNew(t, mem, newKey(t, "k1"))
			if initial != nil {
				if err := s.Save(t.Context(), "a", initial); err != nil {
					t.Fatal(err)
				}
			}
			c := s.(refresh.CompareAndSwapper)
			start := make(chan struct{})
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = c.CompareAndSwap(t.Context(), "a", initial, tokenN(i))
				})
			}
			close(start)
			wg.Wait()

			winner := -1
			for i, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("CompareAndSwap %d and %d both won", winner, i)
				case err == nil:
					winner = i
				case !errors.Is(err, refresh.ErrConflict):
					t.Errorf("CompareAndSwap %d: got %v, want nil or ErrConflict", i, err)
				}
			}
			if winner < 0 {
				t.Fatalf("no CompareAndSwap won")
			}
			got, err := s.Load(t.Context(), "a")
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			checkSame(t, got, tokenN(winner))
		})
	}
}

// hookBackend runs before once, just before the first CompareAndSwap
// reaches the backend: between the wrapper's read and its swap.
type hookBackend struct {
	refresh.MemoryStore
	before      func()
	alwaysLoses bool
	calls       atomic.Int32
}

func (h *hookBackend) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if h.calls.Add(1) == 1 && h.before != nil {
		h.before()
	}
	if h.alwaysLoses {
		return refresh.ErrConflict
	}
	return h.MemoryStore.CompareAndSwap(ctx, key, old, new)
}

func TestCompareAndSwapInterleaved(t *testing.T) {
	k := newKey(t, "k1")
	t1, t2, t3 := tokenN(1), tokenN(2), tokenN(3)

	setup := func(t *testing.T) (*hookBackend, refresh.TokenStore) {
		h := &hookBackend{}
		s := mustNew(t, h, k)
		if err := s.Save(t.Context(), "a", t1); err != nil {
			t.Fatal(err)
		}
		return h, s
	}

	t.Run("another token in between", func(t *testing.T) {
		h, s := setup(t)
		h.before = func() {
			if err := s.Save(t.Context(), "a", t3); err != nil {
				t.Error(err)
			}
		}
		err := s.(refresh.CompareAndSwapper).CompareAndSwap(t.Context(), "a", t1, t2)
		if !errors.Is(err, refresh.ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
		got, _ := s.Load(t.Context(), "a")
		checkSame(t, got, t3)
	})

	t.Run("same token sealed again in between", func(t *testing.T) {
		h, s := setup(t)
		h.before = func() {
			if err := s.Save(t.Context(), "a", t1); err != nil {
				t.Error(err)
			}
		}
		if err := s.(refresh.CompareAndSwapper).CompareAndSwap(t.Context(), "a", t1, t2); err != nil {
			t.Errorf("got %v, want nil: the stored token was still t1", err)
		}
		if n := h.calls.Load(); n != 2 {
			t.Errorf("backend CompareAndSwap calls: got %d, want 2", n)
		}
		got, _ := s.Load(t.Context(), "a")
		checkSame(t, got, t2)
	})

	t.Run("backend always conflicts", func(t *testing.T) {
		h, s := setup(t)
		h.alwaysLoses = true
		err := s.(refresh.CompareAndSwapper).CompareAndSwap(t.Context(), "a", t1, t2)
		if !errors.Is(err, refresh.ErrConflict) {
			t.Errorf("got %v, want ErrConflict", err)
		}
		if n := h.calls.Load(); n != 3 {
			t.Errorf("backend CompareAndSwap calls: got %d, want 3 (bounded retries)", n)
		}
	})
}
