package redisstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
	"github.com/oauthkit/refresh/sealed"
	"github.com/oauthkit/refresh/storetest"
)

// TestConformance runs the store conformance kit, every subtest with a
// store of its own prefix.
func TestConformance(t *testing.T) {
	c := testClient(t)
	storetest.Run(t, func(t *testing.T) refresh.TokenStore {
		return newStore(t, c, redisstore.Options{})
	})
}

// TestSealedConformance runs the kit against the sealing wrapper over a
// Redis store: tokens encrypted at rest in Redis, with the store's lock and
// compare-and-swap passed through.
func TestSealedConformance(t *testing.T) {
	c := testClient(t)
	key := sealed.Key{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	storetest.Run(t, func(t *testing.T) refresh.TokenStore {
		w, err := sealed.New(newStore(t, c, redisstore.Options{}), key)
		if err != nil {
			t.Fatal(err)
		}
		return w
	})
}

func TestNewValidates(t *testing.T) {
	c := newClient("127.0.0.1:1") // never dialled
	defer c.Close()
	for _, tc := range []struct {
		name string
		opts redisstore.Options
	}{
		{"brace in prefix", redisstore.Options{Prefix: "app{1}:"}},
		{"closing brace in prefix", redisstore.Options{Prefix: "app}"}},
		{"tiny lease", redisstore.Options{LockTTL: time.Millisecond}},
		{"negative lease", redisstore.Options{LockTTL: -time.Second}},
		{"negative retry", redisstore.Options{LockRetry: -time.Second}},
		{"nanosecond retry", redisstore.Options{LockRetry: time.Nanosecond}},
		{"retry without its unit", redisstore.Options{LockRetry: 25}},
		{"retry under a millisecond", redisstore.Options{LockRetry: time.Millisecond - 1}},
	} {
		if _, err := redisstore.New(c, tc.opts); err == nil {
			t.Errorf("%s: New(%+v): got nil error, want one", tc.name, tc.opts)
		}
	}
	if _, err := redisstore.New(nil, redisstore.Options{}); err == nil {
		t.Errorf("New(nil client): got nil error, want one")
	}
	s, err := redisstore.New(c, redisstore.Options{})
	if err != nil {
		t.Fatalf("New with zero Options: %v", err)
	}
	if got := redisstore.TokenKey(s, "alice"); !strings.HasPrefix(got, redisstore.DefaultPrefix+"{") {
		t.Errorf("token key = %q, want the default prefix %q and a hash tag", got, redisstore.DefaultPrefix)
	}
}

// TestKeyLayout: a key's token and lock share a Redis Cluster hash tag (and
// so a slot), whatever the key holds, and different keys get different tags.
func TestKeyLayout(t *testing.T) {
	c := newClient("127.0.0.1:1") // never dialled
	defer c.Close()
	s, err := redisstore.New(c, redisstore.Options{Prefix: "p:"})
	if err != nil {
		t.Fatal(err)
	}
	tag := func(name string) string {
		// Redis Cluster's rule: the text between the first "{" and the
		// first "}" after it, if not empty.
		i := strings.IndexByte(name, '{')
		j := strings.IndexByte(name[i+1:], '}')
		if i < 0 || j <= 0 {
			t.Fatalf("%q has no hash tag", name)
		}
		return name[i+1 : i+1+j]
	}
	seen := map[string]string{}
	for _, key := range []string{"", "alice", "{alice}", "a}b{c", "x\x00y", strings.Repeat("k", 1000), "\xff\xfe"} {
		tk, lk := redisstore.TokenKey(s, key), redisstore.LockKey(s, key)
		if !strings.HasPrefix(tk, "p:{") || !strings.HasSuffix(tk, "}:tok") || !strings.HasSuffix(lk, "}:lock") {
			t.Errorf("key %q: token key %q, lock key %q: want p:{hash}:tok and p:{hash}:lock", key, tk, lk)
		}
		if tag(tk) != tag(lk) {
			t.Errorf("key %q: hash tags %q and %q differ", key, tag(tk), tag(lk))
		}
		if prev, dup := seen[tag(tk)]; dup {
			t.Errorf("keys %q and %q share the hash tag %q", prev, key, tag(tk))
		}
		seen[tag(tk)] = key
	}
}

// TestCorruptValues: a Redis key that holds something other than a token of
// this key loads as an error wrapping ErrCorrupt, never ErrNotFound, and
// the message quotes no token; CompareAndSwap refuses to overwrite it.
func TestCorruptValues(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	ctx := context.Background()
	const secret = "SECRET-at-0123456789"
	good := `{"version":1,"key":"k","access_token":"` + secret + `","token_type":"Bearer","refresh_token":"r","expires_in":0}`
	for _, tc := range []struct {
		name string
		set  func(rk string) error
	}{
		{"string", func(rk string) error { return c.Set(ctx, rk, good, 0).Err() }},
		{"list", func(rk string) error { return c.RPush(ctx, rk, good).Err() }},
		{"no json field", func(rk string) error { return c.HSet(ctx, rk, "cas", "x").Err() }},
		{"truncated", func(rk string) error { return c.HSet(ctx, rk, "json", good[:len(good)-5], "cas", "x").Err() }},
		{"not JSON", func(rk string) error { return c.HSet(ctx, rk, "json", "<"+secret+">", "cas", "x").Err() }},
		{"array", func(rk string) error { return c.HSet(ctx, rk, "json", `["`+secret+`"]`, "cas", "x").Err() }},
		{"wrong type", func(rk string) error {
			return c.HSet(ctx, rk, "json", strings.Replace(good, `"expires_in":0`, `"expires_in":"`+secret+`"`, 1), "cas", "x").Err()
		}},
		{"newer version", func(rk string) error {
			return c.HSet(ctx, rk, "json", strings.Replace(good, `"version":1`, `"version":2`, 1), "cas", "x").Err()
		}},
		{"no version", func(rk string) error {
			return c.HSet(ctx, rk, "json", strings.Replace(good, `"version":1,`, ``, 1), "cas", "x").Err()
		}},
		{"another key's", func(rk string) error {
			return c.HSet(ctx, rk, "json", strings.Replace(good, `"key":"k"`, `"key":"other"`, 1), "cas", "x").Err()
		}},
		{"bad expiry", func(rk string) error {
			return c.HSet(ctx, rk, "json", strings.Replace(good, `"expires_in":0`, `"expires_in":0,"expiry":"tomorrow"`, 1), "cas", "x").Err()
		}},
		{"too large", func(rk string) error {
			return c.HSet(ctx, rk, "json", good+strings.Repeat(" ", 1<<20), "cas", "x").Err()
		}},
	} {
		key := "k"
		s := newStore(t, c, redisstore.Options{})
		rk := redisstore.TokenKey(s, key)
		if err := tc.set(rk); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err := s.Load(ctx, key)
		switch {
		case err == nil:
			t.Errorf("%s: Load: got nil error, want one wrapping ErrCorrupt", tc.name)
			continue
		case errors.Is(err, refresh.ErrNotFound) || !errors.Is(err, redisstore.ErrCorrupt):
			t.Errorf("%s: Load: got error %q, want one wrapping ErrCorrupt and not ErrNotFound", tc.name, err)
		case strings.Contains(err.Error(), secret):
			t.Errorf("%s: Load: error %q quotes the token", tc.name, err)
		}
	}

	// CompareAndSwap neither overwrites nor calls a corrupt value a
	// conflict, for values it can tell apart without decoding them.
	for _, tc := range []struct {
		name string
		set  func(rk string) error
	}{
		{"string", func(rk string) error { return c.Set(ctx, rk, good, 0).Err() }},
		{"hash without fingerprint", func(rk string) error { return c.HSet(ctx, rk, "json", good).Err() }},
	} {
		rk := redisstore.TokenKey(s, tc.name)
		if err := tc.set(rk); err != nil {
			t.Fatal(err)
		}
		err := s.CompareAndSwap(ctx, tc.name, nil, &oauth2.Token{AccessToken: "new"})
		if !errors.Is(err, redisstore.ErrCorrupt) || errors.Is(err, refresh.ErrConflict) {
			t.Errorf("%s: CompareAndSwap: got error %v, want one wrapping ErrCorrupt", tc.name, err)
		}
		// Save replaces anything.
		if err := s.Save(ctx, tc.name, &oauth2.Token{AccessToken: "saved"}); err != nil {
			t.Errorf("%s: Save over a corrupt value: %v", tc.name, err)
		} else if tok, err := s.Load(ctx, tc.name); err != nil || tok.AccessToken != "saved" {
			t.Errorf("%s: Load after Save: got %v, %v; want the saved token", tc.name, tok, err)
		}
	}
}

// TestValueFormat: the stored value is a hash with the token's JSON, as the
// package documentation shows, and no TTL.
func TestValueFormat(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	ctx := context.Background()
	exp := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	if err := s.Save(ctx, "alice", &oauth2.Token{AccessToken: "a", TokenType: "Bearer", RefreshToken: "r", Expiry: exp, ExpiresIn: 3600}); err != nil {
		t.Fatal(err)
	}
	rk := redisstore.TokenKey(s, "alice")
	got, err := c.HGet(ctx, rk, "json").Result()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"key":"alice","access_token":"a","token_type":"Bearer","refresh_token":"r","expiry":"2031-05-06T06:08:09.123456789Z","expires_in":3600}`
	if got != want {
		t.Errorf("stored JSON:\n got %s\nwant %s", got, want)
	}
	if ttl, err := c.PTTL(ctx, rk).Result(); err != nil || ttl != -1 {
		t.Errorf("PTTL of the token: got %v, %v; want -1 (no expiry)", ttl, err)
	}

	// A token without expiry omits the field; a key that is not UTF-8
	// is stored in key_base64 too, and loads back.
	if err := s.Save(ctx, "\xffk", &oauth2.Token{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	got, _ = c.HGet(ctx, redisstore.TokenKey(s, "\xffk"), "json").Result()
	want = `{"version":1,"key":"\ufffdk","key_base64":"/2s=","access_token":"a","token_type":"","refresh_token":"","expires_in":0}`
	if got != want {
		t.Errorf("stored JSON:\n got %s\nwant %s", got, want)
	}
	if tok, err := s.Load(ctx, "\xffk"); err != nil || tok.AccessToken != "a" || !tok.Expiry.IsZero() {
		t.Errorf("Load(non-UTF-8 key): got %+v, %v", tok, err)
	}
}

// TestCASInvalidUTF8: a token with bytes that are not UTF-8 (which JSON
// replaces) can be swapped with what Load returned for it.
func TestCASInvalidUTF8(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	ctx := context.Background()
	odd := &oauth2.Token{AccessToken: "a\xffb", RefreshToken: "r\xfe"}
	if err := s.Save(ctx, "k", odd); err != nil {
		t.Fatal(err)
	}
	loaded, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CompareAndSwap(ctx, "k", loaded, &oauth2.Token{AccessToken: "n1"}); err != nil {
		t.Errorf("CompareAndSwap with the loaded token: %v", err)
	}
	if err := s.CompareAndSwap(ctx, "k", &oauth2.Token{AccessToken: "n1"}, odd); err != nil {
		t.Errorf("CompareAndSwap to the odd token: %v", err)
	}
	if err := s.CompareAndSwap(ctx, "k", odd, &oauth2.Token{AccessToken: "n2"}); err != nil {
		t.Errorf("CompareAndSwap with the odd token as saved: %v", err)
	}
}
