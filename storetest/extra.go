package storetest

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// extraNames are the names of the extras checkExtra saves, so that it can
// tell which of them a loaded token has.
var extraNames = []string{"id_token", "scope", "refresh_expires_in", "flag", "zero", "escapes"}

// withExtra returns a copy of tok carrying m as its extras.
func withExtra(tok *oauth2.Token, m map[string]any) *oauth2.Token {
	return clone(tok).WithExtra(m)
}

// checkExtra: a token's extras (oauth2.Token.Extra) come back from Load as
// they were saved, JSON scalars as encoding/json reads them (string,
// float64, bool); a token saved without extras loads without any, even if
// the key's previous token had some, even if it is that very token again;
// and a CompareAndSwap stores the new token's extras, not the old one's.
func checkExtra(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	nonce := randomHex(t, 8)
	first := newToken(t, "extra")
	rich := map[string]any{
		"id_token":           "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("eyJub25jZSI6I", 200) + nonce + ".sig-_",
		"scope":              "openid email profile 日本語",
		"refresh_expires_in": 1800.0,
		"flag":               true,
		"zero":               0.0,
		"escapes":            "a\"b\\c\n\t<>&\u2028",
	}
	steps := []struct {
		what string
		tok  *oauth2.Token
		want map[string]any
	}{
		{"a token with extras", withExtra(first, rich), rich},
		{"another token without extras", newToken(t, "plain"), nil},
		{"the first token again, without extras", clone(first), nil},
		{"the first token again, with other extras", withExtra(first, map[string]any{"scope": "other"}), map[string]any{"scope": "other"}},
	}
	for _, st := range steps {
		if !save(t, s, key, st.tok) {
			return
		}
		got, ok := load(t, s, key)
		if !ok || !expectToken(t, "Load after saving "+st.what, got, st.tok) {
			return
		}
		if !expectExtra(t, "Load after saving "+st.what, got, st.want) {
			return
		}
	}
	cas, ok := s.(refresh.CompareAndSwapper)
	if !ok {
		return
	}
	prev := withExtra(first, map[string]any{"scope": "other"})
	for _, st := range []struct {
		what string
		tok  *oauth2.Token
		want map[string]any
	}{
		{"with extras", withExtra(newToken(t, "swapped"), rich), rich},
		{"without extras", newToken(t, "swapped-plain"), nil},
	} {
		if err := cas.CompareAndSwap(context.Background(), key, prev, st.tok); err != nil {
			t.Errorf("CompareAndSwap to a token %s: got error %s, want nil", st.what, quoteErr(err))
			return
		}
		got, ok := load(t, s, key)
		if !ok || !expectExtra(t, "Load after a CompareAndSwap to a token "+st.what, got, st.want) {
			return
		}
		prev = st.tok
	}
}

// expectExtra reports a failure unless got has exactly the extras of want
// among extraNames. Values are described, not quoted: an id_token is a
// credential.
func expectExtra(t tb, what string, got *oauth2.Token, want map[string]any) bool {
	t.Helper()
	ok := true
	for _, name := range extraNames {
		g, w := got.Extra(name), want[name]
		if g != w {
			t.Errorf("%s: Extra(%q) is %s, want %s", what, name, describeExtra(g), describeExtra(w))
			ok = false
		}
	}
	return ok
}

// describeExtra describes an extra's value without quoting a long string.
func describeExtra(v any) string {
	switch v := v.(type) {
	case nil:
		return "missing"
	case string:
		if len(v) > 40 {
			return fmt.Sprintf("a string of %d bytes", len(v))
		}
		return fmt.Sprintf("the string %q", v)
	}
	return fmt.Sprintf("the %T %v", v, v)
}
