package storetest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// checkNotFound: a key that was never saved loads as ErrNotFound with a nil
// token, even next to keys that were, and even when it is a prefix or an
// extension of one (a store that scans or matches patterns).
func checkNotFound(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	expectNotFound(t, s, ks.key("missing"))

	saved := ks.key("saved")
	if !save(t, s, saved, newToken(t, "saved")) {
		return
	}
	expectNotFound(t, s, ks.key("missing"))
	expectNotFound(t, s, saved[:len(saved)-1])
	expectNotFound(t, s, saved+"x")
	expectNotFound(t, s, saved+"*")
	expectNotFound(t, s, ks.key("sav%"))
	expectNotFound(t, s, ks.key("sav_d"))
}

// longToken returns an n-byte token made of every character a token may
// carry (RFC 6749 allows any visible ASCII; these are the ones base64,
// base64url and JWTs use), made distinct by a random head.
func longToken(t tb, n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=._~-"
	var b strings.Builder
	b.WriteString(randomHex(t, 8))
	for i := 0; b.Len() < n; i++ {
		b.WriteByte(alphabet[i%len(alphabet)])
	}
	return b.String()
}

// checkRoundTrip: whatever Save is given, Load returns: every field, Expiry
// to the millisecond whatever its location, a zero Expiry as zero, empty
// fields as empty, and long tokens of unusual characters as they are.
func checkRoundTrip(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	nonce := randomHex(t, 8)
	jwt := "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9." +
		"eyJzdWIiOiIxMjM0NTY3ODkwIiwibm9uY2UiOiI" + nonce + "In0." +
		"SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c-_"
	cases := []struct {
		name string
		tok  *oauth2.Token
	}{{
		// 123.456789 ms: rounding and truncating to the millisecond or
		// the microsecond agree, so any store keeping at least
		// millisecond precision passes.
		name: "full token, Expiry in UTC+05:30",
		tok:  newToken(t, "full"),
	}, {
		name: "Expiry in UTC-08:00 on the last millisecond of a year",
		tok: &oauth2.Token{
			AccessToken:  "at.west." + nonce,
			TokenType:    "DPoP",
			RefreshToken: "rt.west." + nonce,
			Expiry:       time.Date(2099, 12, 31, 23, 59, 59, 999_000_000, time.FixedZone("UTC-08", -8*3600)),
			ExpiresIn:    86400,
		},
	}, {
		// A store that expires its entries with the access token
		// (a TTL) would lose the refresh token, which outlives it.
		name: "expired token",
		tok: &oauth2.Token{
			AccessToken:  "at.expired." + nonce,
			TokenType:    "Bearer",
			RefreshToken: "rt.expired." + nonce,
			Expiry:       time.Date(2001, 2, 3, 4, 5, 6, 7_000_000, time.UTC),
			ExpiresIn:    1,
		},
	}, {
		name: "zero Expiry, no refresh token, empty TokenType",
		tok: &oauth2.Token{
			AccessToken: "at.zero." + nonce,
		},
	}, {
		name: "refresh token only",
		tok: &oauth2.Token{
			RefreshToken: "rt.only." + nonce,
		},
	}, {
		name: "4 KiB tokens of +/=._~- characters",
		tok: &oauth2.Token{
			AccessToken:  longToken(t, 4096),
			TokenType:    "Bearer",
			RefreshToken: longToken(t, 4096),
			Expiry:       time.Date(2030, 1, 1, 0, 0, 0, 1_000_000, time.UTC),
			ExpiresIn:    7200,
		},
	}, {
		name: "JWT access token",
		tok: &oauth2.Token{
			AccessToken:  jwt,
			TokenType:    "bearer",
			RefreshToken: "1//0g" + nonce + "-_.~+/=",
			Expiry:       time.Date(2030, 6, 7, 8, 9, 10, 500_000_000, time.FixedZone("", 2*3600)),
			ExpiresIn:    3599,
		},
	}}
	for i, c := range cases {
		key := ks.key(fmt.Sprint(i))
		want := clone(c.tok)
		if err := s.Save(context.Background(), key, c.tok); err != nil {
			t.Errorf("%s: Save: got error %q, want nil", c.name, err)
			continue
		}
		got, err := s.Load(context.Background(), key)
		if err != nil || got == nil {
			t.Errorf("%s: Load after Save: got error %s and token %s, want the token", c.name, quoteErr(err), describe(got))
			continue
		}
		expectToken(t, c.name, got, want)
	}
}

// checkOverwrite: a second Save replaces the first token entirely; the
// store does not keep fields of the first that the second lacks.
func checkOverwrite(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	first := newToken(t, "first")
	second := &oauth2.Token{AccessToken: "at.second." + randomHex(t, 8)}
	third := newToken(t, "third")
	third.Expiry = time.Date(2040, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	third.ExpiresIn = 60

	for _, tok := range []*oauth2.Token{first, second, third} {
		if !save(t, s, key, clone(tok)) {
			return
		}
		if !expectLoad(t, s, key, tok) {
			return
		}
	}
}

// isolationKeys returns keys that a careless store might map to the same
// place: by folding case, trimming, cleaning paths, escaping or not,
// normalizing unicode or truncating.
func isolationKeys(ks keyspace) []string {
	long := strings.Repeat("k", 999)
	return []string{
		"", // the one key without a prefix
		ks.key("key"),
		ks.key("Key"),
		ks.key("KEY"),
		ks.key("key "),
		ks.key(" key"),
		ks.key("key\t"),
		ks.key("key\n"),
		ks.key("key/"),
		ks.key("/key"),
		ks.key("a/b"),
		ks.key("a\\b"),
		ks.key("a_b"),
		ks.key("a:b"),
		ks.key("a%2Fb"),
		ks.key("a/./b"),
		ks.key("a/../b"),
		ks.key("b"),
		ks.key("a//b"),
		ks.key("."),
		ks.key(".."),
		ks.key("../../etc/passwd"),
		ks.key("/etc/passwd"),
		ks.key("etc/passwd"),
		ks.key("ключ"),
		ks.key("鍵"),
		ks.key("caf\u00e9"),  // é precomposed (NFC)
		ks.key("cafe\u0301"), // e + combining acute (NFD)
		ks.key("\U0001F511"),
		ks.key(long[:1000-len(ks.prefix)]), // 1000 bytes…
		ks.key(long[:1000-len(ks.prefix)-1] + "j"), // …differing in the last byte
		ks.key("j" + long[:1000-len(ks.prefix)-1]), // …or the first after the prefix
	}
}

// checkKeyIsolation: keys that differ in any way keep separate tokens, and
// a Save to one never changes another.
func checkKeyIsolation(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	keys := isolationKeys(ks)
	want := make(map[string]*oauth2.Token, len(keys))
	for i, k := range keys {
		tok := newToken(t, fmt.Sprint("key", i))
		if !save(t, s, k, clone(tok)) {
			continue
		}
		want[k] = tok
	}
	verify := func(after string) bool {
		t.Helper()
		ok := true
		for _, k := range keys {
			w, saved := want[k]
			if !saved {
				continue
			}
			got, loaded := load(t, s, k)
			if !loaded {
				ok = false
				continue
			}
			if d := tokenDiff(got, w); d != nil {
				ok = false
				t.Errorf("%s, Load(%q) returned another key's token or a changed one: %s",
					after, short(k), strings.Join(d, "; "))
			}
		}
		return ok
	}
	if !verify("after saving every key") {
		return
	}
	for i, k := range keys {
		if _, saved := want[k]; !saved {
			continue
		}
		tok := newToken(t, fmt.Sprint("again", i))
		if !save(t, s, k, clone(tok)) {
			return
		}
		want[k] = tok
		if !verify(fmt.Sprintf("after saving %q again", short(k))) {
			return
		}
	}
}

// checkNoAliasing: neither the caller's changes to a token it saved or
// loaded nor the store's later changes reach the other side.
func checkNoAliasing(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	tok := newToken(t, "alias")
	want := clone(tok)

	if !save(t, s, key, tok) {
		return
	}
	expectToken(t, "the token passed to Save, after Save", tok, want)
	scribble(tok)
	if !expectLoad(t, s, key, want) {
		t.Errorf("changing the token passed to Save after Save changed the stored token")
		return
	}

	got, ok := load(t, s, key)
	if !ok {
		return
	}
	scribble(got)
	if !expectLoad(t, s, key, want) {
		t.Errorf("changing the token returned by Load changed the stored token")
		return
	}

	// The store must not change a token it returned, even when the key
	// is saved again.
	got, ok = load(t, s, key)
	if !ok {
		return
	}
	if !save(t, s, key, newToken(t, "next")) {
		return
	}
	expectToken(t, "a token returned by Load, after another Save of its key", got, want)
}

// scribble changes every field of tok.
func scribble(tok *oauth2.Token) {
	tok.AccessToken = "scribbled"
	tok.TokenType = "scribbled"
	tok.RefreshToken = "scribbled"
	tok.Expiry = time.Date(1999, 9, 9, 9, 9, 9, 0, time.UTC)
	tok.ExpiresIn = -1
}
