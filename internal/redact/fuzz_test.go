package redact

import (
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// spellings returns the spellings of secret that no output may contain:
// raw, percent-encoded, JSON-escaped in the ways encoders do it, hex and
// base64 (alone; see innerForms for base64 inside a blob).
func spellings(secret string) []string {
	out := []string{
		secret,
		url.QueryEscape(secret),
		url.PathEscape(secret),
		percentAll(secret),
		hex.EncodeToString([]byte(secret)),
		strings.ToUpper(hex.EncodeToString([]byte(secret))),
	}
	if utf8.ValidString(secret) { // encoders replace invalid bytes
		odd := false
		out = append(out,
			jsonString(secret, true),
			jsonString(secret, false),
			strings.ReplaceAll(jsonString(secret, true), "/", `\/`),
			uEscape(secret, false, notAlnum),
			uEscape(secret, true, notAlnum),
			uEscape(secret, false, func(r rune) bool { odd = !odd; return odd && notAlnum(r) }),
			uEscape(secret, true, func(r rune) bool { return r > 127 }),
			uEscape(secret, false, func(rune) bool { return true }),
		)
	}
	if len(innerForms(secret)) == 6 { // the secret is long enough for base64 forms
		for _, e := range encodings {
			out = append(out, e.enc.EncodeToString([]byte(secret)))
		}
	}
	return out
}

// innerForms returns, for each base64 alphabet and alignment, the base64
// characters that secret alone determines inside a longer blob, where they
// are long enough to be searched.
func innerForms(secret string) []string {
	var out []string
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			blob := enc.EncodeToString([]byte(strings.Repeat("\x00", k) + secret))
			if lo, hi := (8*k+5)/6, 8*(k+len(secret))/6; hi-lo >= minFormLen {
				out = append(out, blob[lo:hi])
			}
		}
	}
	return out
}

// forbidden returns every spelling of the secrets that no output may show.
func forbidden(secrets ...string) []string {
	var out []string
	for _, secret := range secrets {
		if len(secret) >= MinLen {
			out = append(out, spellings(secret)...)
			out = append(out, innerForms(secret)...)
		}
	}
	return out
}

// leak returns the forbidden spelling that out shows, or "". Markers are
// masked first: a secret may reappear only by overlapping one ("ed]x" in
// "[redacted]x").
func leak(out string, s Secrets, forbidden []string) string {
	out = strings.ReplaceAll(out, Marker, "\x00")
	for _, fp := range s.fingerprints {
		out = strings.ReplaceAll(out, "[token "+fp+"]", "\x00")
	}
	for _, sp := range forbidden {
		if strings.Contains(out, sp) {
			return sp
		}
	}
	return ""
}

func FuzzString(f *testing.F) {
	f.Add(sec, "AT-1234", "x ", " y", "client:", "")
	f.Add("rt<&>\"\\x\u2028é😀", "abcdabcd", `{"t":"\\`, `"}`, `{"refresh_token":"`, `"}`)
	f.Add("aaaa", "aaaaaaaa", "aaa", "a", "a", "aa")
	f.Add("pass word+1", "%2F%2f", "%", "%4", "\\u00", "\\")
	f.Add("/rt-A/b+c", "~~~~", `x\`, "", "", "")
	f.Fuzz(func(t *testing.T, secret, other, before, after, pre, post string) {
		if strings.Contains(secret, "\x00") || strings.Contains(other, "\x00") {
			return // the byte leak masks markers with
		}
		var texts []string
		for _, sp := range spellings(secret) {
			texts = append(texts, before+sp+after)
		}
		for _, e := range encodings {
			blob := e.enc.EncodeToString([]byte(pre + secret + post))
			texts = append(texts, before+blob+after, before+url.QueryEscape(blob)+after)
		}
		bad := forbidden(secret, other)
		for _, s := range []Secrets{New(secret, other), New(other, secret).WithFingerprints()} {
			for _, in := range texts {
				if got := s.String(in); leak(got, s, bad) != "" {
					t.Fatalf("String(%q) = %q, which shows %q", in, got, leak(got, s, bad))
				}
				const max = 200
				got := Field(in, max, s)
				if len(got) > max || !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) {
					t.Fatalf("Field(%q) = %q", in, got)
				}
				// A cut may leave the start of a marker: mask it too.
				cut := strings.TrimSuffix(got, Ellipsis)
				for n := len(Marker) - 1; n > 0 && len(cut) < len(got); n-- {
					if strings.HasSuffix(cut, Marker[:n]) {
						cut = cut[:len(cut)-n]
						break
					}
				}
				if sp := leak(cut, s, bad); sp != "" {
					t.Fatalf("Field(%q) = %q, which shows %q", in, got, sp)
				}
			}
		}
	})
}
