package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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

// checkConcurrent: goroutines that save and load a few keys at once always
// load a whole token that was saved to that key, never a mix of two saves.
// Every field of a token encodes the same counter, and each counter is saved
// to one key only.
func checkConcurrent(t tb, s refresh.TokenStore, o options) {
	const workers, iterations, nkeys = 8, 50, 3
	ks := newKeyspace(t)
	nonce := randomHex(t, 8)
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = ks.key(fmt.Sprint("concurrent", i))
	}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	keyOf := func(n int) int { return n % nkeys }
	tokenOf := func(n int) *oauth2.Token {
		return &oauth2.Token{
			AccessToken:  fmt.Sprintf("at.%d.%d.%s", keyOf(n), n, nonce),
			TokenType:    "Bearer",
			RefreshToken: fmt.Sprintf("rt.%d.%d.%s", keyOf(n), n, nonce),
			Expiry:       base.Add(time.Duration(n) * time.Second),
			ExpiresIn:    int64(n),
		}
	}
	// checkLoaded checks that tok is whole and was saved to key k.
	checkLoaded := func(f *failures, k int, tok *oauth2.Token) {
		var i, n int
		var rest string
		if _, err := fmt.Sscanf(tok.AccessToken, "at.%d.%d.%s", &i, &n, &rest); err != nil || rest != nonce {
			f.add("Load(%q): got AccessToken %q, which no Save of this test stored", keys[k], short(tok.AccessToken))
			return
		}
		if i != k || keyOf(n) != k {
			f.add("Load(%q): got the token saved to %q (AccessToken %q)", keys[k], keys[keyOf(n)], tok.AccessToken)
			return
		}
		if d := tokenDiff(tok, tokenOf(n)); d != nil {
			f.add("Load(%q): got a mix of several saves: %s", keys[k], strings.Join(d, "; "))
		}
	}

	f := &failures{limit: 10}
	ctx := context.Background()
	finished := within(o.slow, func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for it := range iterations {
					n := w*iterations + it + 1
					k := keyOf(n)
					if err := s.Save(ctx, keys[k], tokenOf(n)); err != nil {
						f.add("Save(%q): got error %q, want nil", keys[k], err)
						continue
					}
					// The key was just saved: it holds a token.
					for _, k := range []int{k, (k + 1) % nkeys} {
						tok, err := s.Load(ctx, keys[k])
						switch {
						case err != nil && k == keyOf(n):
							f.add("Load(%q) after Save: got error %q, want a token", keys[k], err)
						case err != nil:
							// Another key may not have been saved yet.
						case tok == nil:
							f.add("Load(%q): got nil token and nil error", keys[k])
						default:
							checkLoaded(f, k, tok)
						}
					}
				}
			})
		}
		wg.Wait()
	})
	if !finished {
		t.Errorf("%d goroutines × %d Save and Load did not finish within %v", workers, iterations, o.slow)
		f.report(t)
		return
	}
	for k := range keys {
		tok, ok := load(t, s, keys[k])
		if ok {
			checkLoaded(f, k, tok)
		}
	}
	f.report(t)
}

// checkContextCancelled: Load and Save (and CompareAndSwap and Lock, if the
// store has them) given a context that has already ended return promptly,
// with or without an error, and do not panic. A Save that reports success
// must have stored the token; one that fails must have stored it whole or
// not at all.
func checkContextCancelled(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	// call runs f under the watchdog, reporting a hang or a panic.
	call := func(what string, f func()) bool {
		t.Helper()
		var panicked any
		returned := within(o.watchdog, func() {
			defer func() { panicked = recover() }()
			f()
		})
		switch {
		case !returned:
			t.Errorf("%s with a cancelled context did not return within %v", what, o.watchdog)
			return false
		case panicked != nil:
			t.Errorf("%s with a cancelled context panicked: %v", what, panicked)
			return false
		}
		return true
	}

	missing := ks.key("missing")
	var tok *oauth2.Token
	var err error
	if call(fmt.Sprintf("Load(%q)", missing), func() { tok, err = s.Load(ctx, missing) }) {
		if err == nil && tok == nil {
			t.Errorf("Load(%q) with a cancelled context: got nil token and nil error", missing)
		}
		if err == nil && tok != nil {
			t.Errorf("Load(%q) of a missing key with a cancelled context: got %s, want an error", missing, describe(tok))
		}
	}

	key := ks.key("k")
	want := newToken(t, "cancelled")
	var saveErr error
	if !call(fmt.Sprintf("Save(%q)", key), func() { saveErr = s.Save(ctx, key, clone(want)) }) {
		return
	}
	if saveErr == nil {
		expectLoad(t, s, key, want)
	} else if got, err := s.Load(context.Background(), key); err == nil {
		expectToken(t, fmt.Sprintf("Load(%q) after a Save that failed with %q", key, saveErr), got, want)
	}

	stored := newToken(t, "stored")
	if !save(t, s, key, clone(stored)) {
		return
	}
	if call(fmt.Sprintf("Load(%q)", key), func() { tok, err = s.Load(ctx, key) }) && err == nil {
		expectToken(t, fmt.Sprintf("Load(%q) with a cancelled context", key), tok, stored)
	}

	if cas, ok := s.(refresh.CompareAndSwapper); ok {
		next := newToken(t, "cas")
		var casErr error
		if call(fmt.Sprintf("CompareAndSwap(%q)", key), func() { casErr = cas.CompareAndSwap(ctx, key, clone(stored), clone(next)) }) {
			if casErr == nil {
				stored = next
			}
			expectLoad(t, s, key, stored)
		}
	}

	if l, ok := s.(refresh.Locker); ok {
		var unlock func()
		var lockErr error
		if call(fmt.Sprintf("Lock(%q)", key), func() { unlock, lockErr = l.Lock(ctx, key) }) {
			switch {
			case lockErr == nil && unlock == nil:
				t.Errorf("Lock(%q) with a cancelled context: got nil unlock and nil error", key)
			case lockErr == nil:
				unlock()
			case !errors.Is(lockErr, context.Canceled):
				t.Errorf("Lock(%q) with a cancelled context: got error %q, want nil or one wrapping context.Canceled", key, lockErr)
			}
		}
	}
}
