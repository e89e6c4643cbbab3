package sealed_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/sealed"
	"golang.org/x/oauth2"
)

// fixedKey returns a key whose secret is the same in every run, so that
// sealed values in the fuzzer's corpus keep opening.
func fixedKey(id string, b byte) sealed.Key {
	return sealed.Key{ID: id, Secret: bytes.Repeat([]byte{b}, 32)}
}

// oneTokenBackend holds one token, whatever the key, as a backend that
// returns whatever was written into it would.
type oneTokenBackend struct{ tok *oauth2.Token }

func (b *oneTokenBackend) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if b.tok == nil {
		return nil, refresh.ErrNotFound
	}
	return b.tok, nil
}

func (b *oneTokenBackend) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	b.tok = tok
	return nil
}

func (b *oneTokenBackend) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if !refresh.SameToken(b.tok, old) {
		return refresh.ErrConflict
	}
	b.tok = new
	return nil
}

// openError matches every message of a value that does not open: they name
// the store key and key ID, and quote nothing of the value.
var openError = regexp.MustCompile(`^sealed: key "alice": (` +
	`stored token is not sealed \(saved without this wrapper\?\)|` +
	`token sealed with unknown key id "(?:[^"\\]|\\.){1,64}" \(old key removed too early\?\)|` +
	`token sealed with key id "k[12]" is corrupt|` +
	`token sealed with key id "k[12]" failed authentication \(wrong secret, altered, or copied from another key\))$`)

// FuzzOpen feeds the store whatever a backend might return for alice: a
// value sealed for her, for bob, with another key, altered, or not sealed
// at all. Load must return one of alice's tokens or an error that quotes
// nothing of the value; CompareAndSwap must swap exactly when the value
// opens to the expected token.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	k1, k2, k3 := fixedKey("k1", 1), fixedKey("k2", 2), fixedKey("k3", 3)
	alices := []*oauth2.Token{sampleToken(), tokenN(1), {AccessToken: "a"}}
	sealFor := func(key string, tok *oauth2.Token, k sealed.Key) string {
		b := &oneTokenBackend{}
		s, err := sealed.New(b, k)
		if err != nil {
			f.Fatal(err)
		}
		if err := s.Save(ctx, key, tok); err != nil {
			f.Fatal(err)
		}
		return b.tok.AccessToken
	}
	for _, tok := range alices {
		for _, k := range []sealed.Key{k1, k2} {
			v := sealFor("alice", tok, k)
			f.Add(v, "")
			f.Add(v, plainRefresh) // a plaintext field next to a sealed value
			f.Add(v[:len(v)-1], "")
			f.Add(v+"A", "")
			f.Add(strings.Replace(v, "sealed1:k1:", "sealed1:k2:", 1), "")
		}
	}
	f.Add(sealFor("bob", tokenN(7), k1), "") // never one of alice's
	f.Add(sealFor("alice", tokenN(1), k3), "")
	for _, v := range []string{"", plainAccess, "sealed1:", "sealed1:k1", "sealed1:k1:", "sealed1::AAAA",
		"sealed1:k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "sealed1:k1:AA\nAA", "sealed1:k\"\\:x", "sealed2:k1:AAAA"} {
		f.Add(v, "")
	}
	f.Fuzz(func(t *testing.T, access, refreshTok string) {
		raw := &oauth2.Token{AccessToken: access, RefreshToken: refreshTok}
		s, err := sealed.New(&oneTokenBackend{tok: raw}, k1, k2)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, "alice")
		if err != nil {
			if errors.Is(err, refresh.ErrNotFound) {
				t.Fatalf("Load: %v: a stored value must never read as no token", err)
			}
			if !openError.MatchString(err.Error()) {
				t.Fatalf("Load: error %q is none of the messages for a value that does not open", err)
			}
			got = nil
		} else if !containsToken(alices, got) {
			t.Fatalf("Load opened %q to %+v, which was never sealed for alice", access, got)
		}

		for _, old := range alices {
			b := &oneTokenBackend{tok: raw}
			s, _ := sealed.New(b, k1, k2)
			err := s.(refresh.CompareAndSwapper).CompareAndSwap(ctx, "alice", old, tokenN(9))
			if want := got != nil && refresh.SameToken(got, old); (err == nil) != want {
				t.Fatalf("CompareAndSwap from %+v over %q: got %v, want a swap: %v", old, access, err, want)
			}
			if err != nil && b.tok != raw {
				t.Fatalf("CompareAndSwap failed with %v but replaced the value", err)
			}
		}
	})
}

// containsToken reports whether toks holds tok, every field equal.
func containsToken(toks []*oauth2.Token, tok *oauth2.Token) bool {
	for _, want := range toks {
		if tok.AccessToken == want.AccessToken && tok.RefreshToken == want.RefreshToken &&
			tok.TokenType == want.TokenType && tok.ExpiresIn == want.ExpiresIn && tok.Expiry.Equal(want.Expiry) {
			return true
		}
	}
	return false
}
