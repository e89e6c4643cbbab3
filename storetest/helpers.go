package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// keyspace makes the keys of one subtest: a prefix from the subtest's name
// and a random suffix, so that subtests sharing a backend never see each
// other's tokens.
type keyspace struct {
	prefix string
}

func newKeyspace(t tb) keyspace {
	t.Helper()
	// Keep the prefix to characters every backend takes as they are, so
	// that a store's escaping of unusual keys is tested by the keys the
	// checks add to it, not by the test's name.
	name := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 64 {
		name = name[len(name)-64:]
	}
	return keyspace{prefix: "storetest-" + name + "-" + randomHex(t, 6) + "-"}
}

// key returns a key of the subtest that ends with suffix.
func (k keyspace) key(suffix string) string { return k.prefix + suffix }

func randomHex(t tb, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("crypto/rand: %v", err)
	}
	return hex.EncodeToString(b)
}

// newToken returns a token with every field set, distinct from every other
// token of the test run: tag says what it is for, in failure messages.
func newToken(t tb, tag string) *oauth2.Token {
	t.Helper()
	nonce := randomHex(t, 8)
	return &oauth2.Token{
		AccessToken:  "at." + tag + "." + nonce,
		TokenType:    "Bearer",
		RefreshToken: "rt." + tag + "." + nonce,
		Expiry:       time.Date(2031, 3, 4, 5, 6, 7, 123_456_789, time.FixedZone("UTC+05:30", 5*3600+30*60)),
		ExpiresIn:    3600,
	}
}

// clone returns a copy of the fields a store keeps, so that a check never
// hands a store a pointer it compares or modifies later.
func clone(tok *oauth2.Token) *oauth2.Token {
	if tok == nil {
		return nil
	}
	return &oauth2.Token{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		Expiry:       tok.Expiry,
		ExpiresIn:    tok.ExpiresIn,
	}
}

// tokenDiff lists how got differs from want in the fields a store must
// keep; it is empty when they are the same. Expiry must be the same instant
// to the millisecond, in any location; a zero Expiry must stay zero.
func tokenDiff(got, want *oauth2.Token) []string {
	switch {
	case got == nil && want == nil:
		return nil
	case got == nil:
		return []string{fmt.Sprintf("got nil token, want %s", describe(want))}
	case want == nil:
		return []string{fmt.Sprintf("got %s, want nil token", describe(got))}
	}
	var d []string
	str := func(field, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", field, short(g), short(w)))
		}
	}
	str("AccessToken", got.AccessToken, want.AccessToken)
	str("TokenType", got.TokenType, want.TokenType)
	str("RefreshToken", got.RefreshToken, want.RefreshToken)
	if !sameExpiry(got.Expiry, want.Expiry) {
		d = append(d, fmt.Sprintf("Expiry: got %q, want %q", fmtTime(got.Expiry), fmtTime(want.Expiry)))
	}
	if got.ExpiresIn != want.ExpiresIn {
		d = append(d, fmt.Sprintf("ExpiresIn: got %d, want %d", got.ExpiresIn, want.ExpiresIn))
	}
	return d
}

func sameExpiry(got, want time.Time) bool {
	if want.IsZero() || got.IsZero() {
		return want.IsZero() == got.IsZero()
	}
	return got.Round(time.Millisecond).Equal(want.Round(time.Millisecond))
}

func fmtTime(tm time.Time) string {
	if tm.IsZero() {
		return "zero time"
	}
	return tm.Format(time.RFC3339Nano)
}

// describe summarizes a token for a failure message.
func describe(tok *oauth2.Token) string {
	if tok == nil {
		return "nil token"
	}
	return fmt.Sprintf("{AccessToken: %q, TokenType: %q, RefreshToken: %q, Expiry: %q, ExpiresIn: %d}",
		short(tok.AccessToken), short(tok.TokenType), short(tok.RefreshToken), fmtTime(tok.Expiry), tok.ExpiresIn)
}

// short keeps failure messages readable when a 4 KiB token is involved.
func short(s string) string {
	if len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)…%s", s[:40], len(s), s[len(s)-20:])
}

// expectToken reports a failure if got is not want; what says which load
// this was.
func expectToken(t tb, what string, got, want *oauth2.Token) bool {
	t.Helper()
	d := tokenDiff(got, want)
	for _, m := range d {
		t.Errorf("%s: %s", what, m)
	}
	return len(d) == 0
}

// load calls s.Load and reports a failure if it fails or breaks the
// (token, nil) / (nil, error) convention.
func load(t tb, s refresh.TokenStore, key string) (*oauth2.Token, bool) {
	t.Helper()
	tok, err := s.Load(context.Background(), key)
	if err != nil {
		t.Errorf("Load(%q): got error %q, want a token", short(key), err)
		return nil, false
	}
	if tok == nil {
		t.Errorf("Load(%q): got nil token and nil error, want a token", short(key))
		return nil, false
	}
	return tok, true
}

// expectLoad reports a failure unless Load(key) returns want.
func expectLoad(t tb, s refresh.TokenStore, key string, want *oauth2.Token) bool {
	t.Helper()
	got, ok := load(t, s, key)
	if !ok {
		return false
	}
	return expectToken(t, fmt.Sprintf("Load(%q)", short(key)), got, want)
}

// expectNotFound reports a failure unless Load(key) says the key holds no
// token.
func expectNotFound(t tb, s refresh.TokenStore, key string) {
	t.Helper()
	tok, err := s.Load(context.Background(), key)
	if !errors.Is(err, refresh.ErrNotFound) {
		t.Errorf("Load(%q): got error %v, want one wrapping refresh.ErrNotFound", short(key), quoteErr(err))
	}
	if tok != nil {
		t.Errorf("Load(%q) of a missing key: got %s, want nil token", short(key), describe(tok))
	}
}

// save calls s.Save and reports a failure if it fails.
func save(t tb, s refresh.TokenStore, key string, tok *oauth2.Token) bool {
	t.Helper()
	if err := s.Save(context.Background(), key, tok); err != nil {
		t.Errorf("Save(%q): got error %q, want nil", short(key), err)
		return false
	}
	return true
}

func quoteErr(err error) string {
	if err == nil {
		return "nil"
	}
	return fmt.Sprintf("%q", err.Error())
}

// within runs f in a goroutine of its own and reports whether it returned
// within d. f must not use t: when within returns false, f may still be
// running after the test has ended. Its results may be read only when
// within returns true.
func within(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// failures collects the failures of many goroutines, which must not call
// t themselves (they may outlive the test), and keeps the first few.
type failures struct {
	mu    sync.Mutex // protects msgs and n
	msgs  []string
	n     int
	limit int
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.n <= f.limit {
		f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
	}
}

// report hands the failures collected so far to t.
func (f *failures) report(t tb) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.msgs {
		t.Errorf("%s", m)
	}
	if f.n > len(f.msgs) {
		t.Errorf("… and %d more failures like these", f.n-len(f.msgs))
	}
}
