package leakscan

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestScanFindsEveryEncoding: a secret is found as it is and in each
// encoding, alone or inside a longer text, at every alignment.
func TestScanFindsEveryEncoding(t *testing.T) {
	const tok = "rt-12-3-0123456789abcdef"
	const idTok = "idt-12-3-0123456789abcdef"
	const secret = "my+odd/secret=value&x"
	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UifQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4Gawxaep"
	s := New(secret)
	js, _ := json.Marshal(secret)
	for _, v := range []string{tok, idTok, secret, jwt} {
		forms := map[string]string{
			"raw":     v,
			"query":   url.QueryEscape(v),
			"path":    url.PathEscape(v),
			"json":    strings.ReplaceAll(v, "/", `\/`),
			"hex":     hex.EncodeToString([]byte(v)),
			"HEX":     strings.ToUpper(hex.EncodeToString([]byte(v))),
			"std":     base64.StdEncoding.EncodeToString([]byte(v)),
			"url":     base64.URLEncoding.EncodeToString([]byte(v)),
			"rawstd":  base64.RawStdEncoding.EncodeToString([]byte(v)),
			"rawurl":  base64.RawURLEncoding.EncodeToString([]byte(v)),
			"marshal": string(js),
		}
		for k := 1; k <= 3; k++ {
			forms["in base64 at "+string(rune('0'+k))] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("i", k) + "d:" + v + ":tail"))
		}
		for name, f := range forms {
			for _, line := range []string{f, "error: " + f + " (x)", `"` + f + `"`} {
				if got := s.Scan(line); len(got) == 0 {
					t.Errorf("%s form of %.6s… in %q: not found", name, v, line)
				}
			}
		}
	}
}

// TestScanQuiet: ordinary test output is not reported, and a report never
// holds the value it found.
func TestScanQuiet(t *testing.T) {
	s := New("my+odd/secret=value&x")
	for _, line := range []string{
		"=== RUN   TestStorm",
		`    refresh_test.go:42: refresh: key "default": token endpoint answered HTTP 400 invalid_grant`,
		"access_token=3f2a9c1b expiry=2026-12-01T11:55:00Z",
		"storetest-TestChecksFailBrokenStores_keys_trimmed_KeyIsolation-7cd6c0811955-key",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"ok  	github.com/oauthkit/refresh	9.271s",
	} {
		if got := s.Scan(line); len(got) != 0 {
			t.Errorf("%q: got %v, want nothing", line, got)
		}
	}
	for _, r := range s.Scan("rt-1-0-0123456789abcdef my+odd/secret=value&x") {
		if strings.Contains(r, "0123456789abcdef") || strings.Contains(r, "odd/secret") {
			t.Errorf("report %q holds the value", r)
		}
	}
}
