package redisstore_test

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// FuzzLoadValue: whatever the "json" field of a token's Redis hash holds,
// what Load makes of it is key's token or an error wrapping ErrCorrupt
// that quotes nothing of the value; never a panic, never a token for
// another key. It needs no Redis: it runs what Load does with the fields
// HGETALL returned.
//
//	go test -run='^$' -fuzz=FuzzLoadValue -fuzztime=10s .
func FuzzLoadValue(f *testing.F) {
	c := newClient("127.0.0.1:1") // never dialled
	defer c.Close()
	s, err := redisstore.New(c, redisstore.Options{Prefix: "fuzz:"})
	if err != nil {
		f.Fatal(err)
	}
	exp := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, seed := range []struct {
		key string
		tok *oauth2.Token
	}{
		{"alice", &oauth2.Token{AccessToken: "SECRET-at-0123456789", TokenType: "Bearer", RefreshToken: "SECRET-rt-9876543210", Expiry: exp, ExpiresIn: 3600}},
		{"", &oauth2.Token{AccessToken: "SECRET-at-empty-key"}},
		{"\xffk", &oauth2.Token{AccessToken: "SECRET-at-\xff\xfe", RefreshToken: "SECRET-rt-not-utf8"}},
		{"{bob} x", &oauth2.Token{AccessToken: "SECRET-at-\"quoted\"\\", RefreshToken: "SECRET-rt-</script>", Expiry: exp.In(time.FixedZone("x", 3600))}},
	} {
		h, err := redisstore.Hash(seed.key, seed.tok)
		if err != nil {
			f.Fatal(err)
		}
		v := []byte(h["json"])
		f.Add(seed.key, v)
		f.Add(seed.key+"x", v)        // another key's
		f.Add(seed.key, v[:len(v)/2]) // truncated
	}
	for _, v := range []string{
		`["SECRET-at-in-an-array"]`,
		`"SECRET-at-a-string"`,
		`{"version":1,"key":"k","access_token":"SECRET-at-0","expires_in":"SECRET-in-a-number"}`,
		`{"version":2,"key":"k","access_token":"SECRET-at-0"}`,
		`{"key":"k","access_token":"SECRET-at-0"}`,
		`{"version":1,"key":"k","key_base64":"SECRET-not-base64","access_token":"SECRET-at-0"}`,
		`{"version":1,"key":"k","access_token":"SECRET-at-0","expiry":"SECRET-tomorrow"}`,
		`{"version":1,"key":"k","key":"other","access_token":"SECRET-at-0"}`,
		`{"version":1,"key":"k","access_token":"SECRET-at-0","unknown":"SECRET-in-an-unknown-field"}`,
	} {
		f.Add("k", []byte(v))
	}
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		tok, err := redisstore.FromHash(s, key, map[string]string{"json": string(value), "cas": "x"})
		if err != nil {
			if !errors.Is(err, redisstore.ErrCorrupt) || errors.Is(err, refresh.ErrNotFound) {
				t.Fatalf("error %q: want one wrapping ErrCorrupt, not ErrNotFound", err)
			}
			// The Redis key is the store's own (a hash of the key).
			checkQuotesNothing(t, strings.ReplaceAll(err.Error(), redisstore.TokenKey(s, key), "<key>"), value)
			return
		}
		// The value is key's token, and no other key's.
		for _, other := range otherKeys(key) {
			if _, err := redisstore.FromHash(s, other, map[string]string{"json": string(value)}); err == nil {
				t.Fatalf("the value loads as the token of %q and of %q", key, other)
			}
		}
		// What Load returned saves and loads back the same.
		h, err := redisstore.Hash(key, tok)
		if err != nil {
			return // an expiry that Save refuses (a year outside 0…9999 in UTC)
		}
		back, err := redisstore.FromHash(s, key, h)
		if err != nil {
			t.Fatalf("the loaded token, saved again, does not load: %v", err)
		}
		if back.AccessToken != tok.AccessToken || back.TokenType != tok.TokenType || back.RefreshToken != tok.RefreshToken ||
			back.ExpiresIn != tok.ExpiresIn || !back.Expiry.Equal(tok.Expiry) {
			t.Fatalf("the loaded token, saved again, loads as another: the fields differ")
		}
	})
}

// otherKeys returns keys near key that a lax comparison could confuse
// with it; none is key.
func otherKeys(key string) []string {
	var keys []string
	for _, k := range []string{"", key + "x", "x" + key, key + " ", key + "\x00", strings.ToUpper(key), strings.ToLower(key),
		strings.TrimSpace(key), strings.ToValidUTF8(key, "\uFFFD"), key[:len(key)/2]} {
		if k != key {
			keys = append(keys, k)
		}
	}
	return keys
}

// jsonString matches a JSON string literal, or one that the end of the
// value cuts short.
var jsonString = regexp.MustCompile(`"(?:[^"\\]|\\.)*("|$)`)

// fieldNames are the names of the format's fields, which messages may
// quote.
var fieldNames = map[string]bool{"version": true, "key": true, "key_base64": true, "access_token": true,
	"token_type": true, "refresh_token": true, "expiry": true, "expires_in": true, "json": true, "cas": true}

// checkQuotesNothing fails the test if msg holds, in any of the forms
// below, a string of value that could be a token: a JSON string literal of
// 8 bytes or more in the place of a value (not of a field name, which a
// message may quote), other than a field name of the format.
func checkQuotesNothing(t *testing.T, msg string, value []byte) {
	t.Helper()
	v := string(value)
	var secrets []string
	for _, m := range jsonString.FindAllStringIndex(v, -1) {
		if rest := strings.TrimLeft(v[m[1]:], " \t\r\n"); strings.HasPrefix(rest, ":") {
			continue // a field name
		}
		lit := v[m[0]:m[1]]
		inner := strings.TrimSuffix(lit[1:], `"`)
		if s, err := strconv.Unquote(`"` + inner + `"`); err == nil && len(s) >= 8 && !fieldNames[s] {
			secrets = append(secrets, s)
		}
		if len(inner) >= 8 && !fieldNames[inner] {
			secrets = append(secrets, inner)
		}
	}
	for _, s := range secrets {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)),
			base64.RawURLEncoding.EncodeToString([]byte(s)), url.QueryEscape(s), hex.EncodeToString([]byte(s))} {
			if strings.Contains(msg, form) {
				t.Fatalf("error %q quotes %q of the value", msg, form)
			}
		}
	}
}
