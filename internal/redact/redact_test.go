package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// A secret with the characters that encoders escape in one way or another.
const sec = "rt-A/b+c=d~e.f_g"

// jsonString returns s as encoding/json writes it, without the quotes;
// html is encoding/json's default of escaping <, > and &.
func jsonString(s string, html bool) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(html)
	e.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")[1 : b.Len()-2]
}

// uEscape writes each rune of s for which escape is true, and each one a
// JSON string must escape, as \uXXXX (a surrogate pair beyond the BMP), in
// lower or upper case hex.
func uEscape(s string, upper bool, escape func(rune) bool) string {
	format := "\\u%04x"
	if upper {
		format = "\\u%04X"
	}
	var b strings.Builder
	for _, r := range s {
		// Whatever else it escapes, a JSON string escapes '"', '\' and
		// control characters (RFC 8259, Section 7): a raw backslash
		// would start an escape of its own with what follows.
		if !escape(r) && r != '"' && r != '\\' && r >= 0x20 {
			b.WriteRune(r)
			continue
		}
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			fmt.Fprintf(&b, format+format, r1, r2)
		} else {
			fmt.Fprintf(&b, format, r)
		}
	}
	return b.String()
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

func notAlnum(r rune) bool { return !isAlnum(r) }

// percentAll percent-encodes every byte of s.
func percentAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02x", s[i])
	}
	return b.String()
}

var encodings = []struct {
	name string
	enc  *base64.Encoding
}{
	{"std", base64.StdEncoding},
	{"url", base64.URLEncoding},
	{"raw std", base64.RawStdEncoding},
	{"raw url", base64.RawURLEncoding},
}

// blobWant is what must remain of the base64 blob enc(pre+secret+post):
// the characters that only pre's bits decide, Marker, and the characters
// (and padding) that only post's bits decide.
func blobWant(enc *base64.Encoding, pre, secret, post string) string {
	blob := enc.EncodeToString([]byte(pre + secret + post))
	head := 8 * len(pre) / 6
	if post == "" {
		return blob[:head] + Marker
	}
	tail := (8*(len(pre)+len(secret)) + 5) / 6
	return blob[:head] + Marker + blob[tail:]
}

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		secrets []string
		want    string
	}{
		{name: "raw", in: "x " + sec + " y", want: "x [redacted] y"},
		{name: "at the start", in: sec + " y", want: "[redacted] y"},
		{name: "at the end", in: "x " + sec, want: "x [redacted]"},
		{name: "whole", in: sec, want: "[redacted]"},
		{name: "twice", in: sec + "," + sec, want: "[redacted],[redacted]"},
		{name: "query escaped", in: "token=" + url.QueryEscape(sec) + "&a=b", want: "token=[redacted]&a=b"},
		{name: "path escaped", in: "/t/" + url.PathEscape(sec) + "/x", want: "/t/[redacted]/x"},
		{name: "percent lower case", in: "t=rt-A%2fb%2bc%3dd~e.f_g&", want: "t=[redacted]&"},
		{name: "percent everything", in: "t=" + percentAll(sec) + "&", want: "t=[redacted]&"},
		{name: "form space", in: "p=" + url.QueryEscape("pass word 1234") + "&", secrets: []string{"pass word 1234"}, want: "p=[redacted]&"},
		{name: "json", in: `{"t":"` + jsonString(sec, true) + `"}`, want: `{"t":"[redacted]"}`},
		{name: "json html escapes", in: `{"t":"` + jsonString("rt<&>1234", true) + `"}`, secrets: []string{"rt<&>1234"}, want: `{"t":"[redacted]"}`},
		{name: "json without html escapes", in: `{"t":"` + jsonString("rt<&>1234", false) + `"}`, secrets: []string{"rt<&>1234"}, want: `{"t":"[redacted]"}`},
		{name: "json quote and backslash", in: `{"t":"` + jsonString(`rt"\1234`, true) + `"}`, secrets: []string{`rt"\1234`}, want: `{"t":"[redacted]"}`},
		{name: "json control and U+2028", in: `"` + jsonString("rt\x01\u2028x", true) + `"`, secrets: []string{"rt\x01\u2028x"}, want: `"[redacted]"`},
		{name: "json slash escaped (PHP)", in: `{"t":"rt-A\/b+c=d~e.f_g"}`, want: `{"t":"[redacted]"}`},
		{name: "json plus escaped (.NET)", in: `{"t":"rt-A/b\u002Bc=d~e.f_g"}`, want: `{"t":"[redacted]"}`},
		{name: "json equals escaped (Gson)", in: `{"t":"rt-A/b+c\u003dd~e.f_g"}`, want: `{"t":"[redacted]"}`},
		{name: "json all escaped, lower", in: `"` + uEscape(sec, false, notAlnum) + `"`, want: `"[redacted]"`},
		{name: "json all escaped, upper", in: `"` + uEscape(sec, true, notAlnum) + `"`, want: `"[redacted]"`},
		{name: "json every character escaped", in: `"` + uEscape(sec, false, func(rune) bool { return true }) + `"`, want: `"[redacted]"`},
		{name: "json non-ASCII (Python)", in: `"` + uEscape("tök😀en-1234", false, func(r rune) bool { return r > 127 }) + `"`, secrets: []string{"tök😀en-1234"}, want: `"[redacted]"`},
		// A reader sees `\u0072…` as an escaped secret; a JSON decoder
		// sees a backslash and "u0072…".
		{name: "json escape after a backslash", in: `"\` + uEscape(sec, false, func(rune) bool { return true }) + `"`, want: `"\[redacted]"`},
		{name: "json slash escape after a backslash", in: `"\\u002Frt-A\/b"`, secrets: []string{"/rt-A/b"}, want: `"\[redacted]"`},
		{name: "json escape after an escaped backslash", in: `"\\` + uEscape(sec, false, func(rune) bool { return true }) + `"`, want: `"\\[redacted]"`},
		// An escape just before an escaped secret swallows its first
		// bytes: a reader still sees the secret after the "%" or "\".
		{name: "percent escape swallows the start", in: "%b0%E2%80%A80", secrets: []string{"b0\u2028"}, want: "[redacted]0"},
		{name: "percent escape swallows one digit", in: "%9b0%E2%80%A8", secrets: []string{"b0\u2028"}, want: "[redacted]"},
		{name: "json short escape swallows the start", in: `"\n0\u2028x"`, secrets: []string{"n0\u2028x"}, want: `"[redacted]"`},
		{name: "json u escape swallows digits", in: `\u0041ab\/cd`, secrets: []string{"41ab/cd"}, want: "[redacted]"},
		{name: "json surrogate swallows u", in: `\ud83d\ude00ab\/cd`, secrets: []string{"ude00ab/cd"}, want: "[redacted]"},
		{name: "percent escape swallows the start of a form body", in: "%00+%210", secrets: []string{"00 !"}, want: "[redacted]0"},
		{name: "percent escape swallows the start of base64", in: "%" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("i\xbf\xfetoken-"))),
			secrets: []string{"i\xbf\xfetoken-"}, want: "[redacted]"},
		{name: "json escape unpaired by a backslash before it", in: `\\u0026\\000`, secrets: []string{`&\00`}, want: `\[redacted]0`},
		{name: "json short escape unpaired by a backslash before it", in: `x\\nrt-A\/b`, secrets: []string{"\nrt-A/b"}, want: `x\[redacted]`},
		{name: "a swallowed lead that differs is kept", in: "%c0%E2%80%A8", secrets: []string{"b0\u2028"}, want: "%c0%E2%80%A8"},
		{name: "hex", in: "h=" + hex.EncodeToString([]byte(sec)) + ".", want: "h=[redacted]."},
		{name: "HEX", in: "h=" + strings.ToUpper(hex.EncodeToString([]byte(sec))) + ".", want: "h=[redacted]."},
		{name: "base64 std", in: "b=" + base64.StdEncoding.EncodeToString([]byte(sec)) + ".", want: "b=[redacted]."},
		{name: "base64 url", in: "b=" + base64.URLEncoding.EncodeToString([]byte(sec)) + ".", want: "b=[redacted]."},
		{name: "base64 raw std", in: "b=" + base64.RawStdEncoding.EncodeToString([]byte(sec)) + ".", want: "b=[redacted]."},
		{name: "base64 raw url", in: "b=" + base64.RawURLEncoding.EncodeToString([]byte(sec)) + ".", want: "b=[redacted]."},
		{name: "base64 percent-encoded", in: "b=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("id:"+sec))) + "&",
			want: "b=" + base64.StdEncoding.EncodeToString([]byte("id:"))[:4] + "[redacted]&"},
		{name: "base64 slash escaped", in: `"` + strings.ReplaceAll(base64.StdEncoding.EncodeToString([]byte(sec+"?")), "/", `\/`) + `"`,
			want: `"[redacted]` + base64.StdEncoding.EncodeToString([]byte(sec + "?"))[(8*len(sec)+5)/6:] + `"`},

		{name: "overlapping secrets", in: "xx abcdefghi xx", secrets: []string{"abcdef", "defghi"}, want: "xx [redacted] xx"},
		{name: "secret inside another", in: "x RT-SECRET-XYZ y", secrets: []string{"SECRET", "RT-SECRET-XYZ"}, want: "x [redacted] y"},
		{name: "adjacent occurrences", in: "abcdabcd.", secrets: []string{"abcd"}, want: "[redacted]."},
		{name: "self-overlapping secret", in: "aaaaa b aaaa", secrets: []string{"aaaa"}, want: "[redacted] b [redacted]"},
		{name: "periodic secret", in: "x" + strings.Repeat("ab", 10) + "ax", secrets: []string{"abababab"}, want: "x[redacted]ax"},
		{name: "raw and escaped overlap", in: "rt-A/b+c=d~e.f_g%2Fz", secrets: []string{sec, "d~e.f_g/z"}, want: "[redacted]"},
		{name: "duplicate secrets", in: "a " + sec, secrets: []string{sec, sec}, want: "a [redacted]"},

		{name: "short secrets ignored", in: "abc x abcd", secrets: []string{"", "abc", "x"}, want: "abc x abcd"},
		{name: "no secrets", in: "rt-A/b", secrets: []string{}, want: "rt-A/b"},
		{name: "other text untouched", in: `50% off \u00e9 \\ %zz \u12 %4`, want: `50% off \u00e9 \\ %zz \u12 %4`},
		{name: "partial secret kept", in: "rt-A/b+c=d~e.f_", want: "rt-A/b+c=d~e.f_"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{sec}
			}
			if got := New(secrets...).String(tt.in); got != tt.want {
				t.Errorf("String(%q)\ngot  %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestBase64Blob: a secret inside a longer base64 blob, at each alignment
// and in each encoding, loses every character that carries its bits.
func TestBase64Blob(t *testing.T) {
	// The comments give len(pre) % 3, the secret's alignment.
	docs := []struct{ pre, post string }{
		{"client:", ""},                        // 1: Basic credentials
		{`{"refresh_token":"`, `","x":1}`},     // 0: a JSON document
		{`{"a":12,"refresh_token":"`, `"}`},    // 1
		{`{"ab":12,"refresh_token":"`, `"}`},   // 2
		{"", "tail"},                           // 0: at the start
		{"x", ""}, {"xy", ""}, {"xyz", "\x00"}, // 1, 2, 0: short neighbours
	}
	aligned := map[int]bool{}
	for _, d := range docs {
		aligned[len(d.pre)%3] = true
	}
	if len(aligned) != 3 {
		t.Fatalf("docs cover alignments %v, want all three", aligned)
	}
	for _, secret := range []string{sec, "AT-1234", "rt-longer-secret-0123456789"} {
		for _, d := range docs {
			for _, e := range encodings {
				blob := e.enc.EncodeToString([]byte(d.pre + secret + d.post))
				got := New(secret).String("Basic " + blob + " ok")
				want := "Basic " + blobWant(e.enc, d.pre, secret, d.post) + " ok"
				if got != want {
					t.Errorf("%s, secret %q after %d bytes, before %d:\ngot  %q\nwant %q", e.name, secret, len(d.pre), len(d.post), got, want)
				}
			}
		}
	}
}

func TestWithFingerprints(t *testing.T) {
	at, rt := "AT-1234", "RT-5678"
	fa, fr := "[token "+Fingerprint(at)+"]", "[token "+Fingerprint(rt)+"]"
	s := New(at, rt).WithFingerprints()
	for _, tt := range []struct{ in, want string }{
		{"a=AT-1234 r=RT-5678 a=AT-1234", "a=" + fa + " r=" + fr + " a=" + fa},
		{"AT-1234RT-5678", fa + fr},
		{"AT-1234AT-1234", fa},
		{"x=" + url.QueryEscape("RT-5678"), "x=" + fr},
		{"none", "none"},
	} {
		if got := s.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The plain Secrets are unchanged.
	if got := New(at).String(at); got != Marker {
		t.Errorf("got %q, want %q", got, Marker)
	}
}

func TestFingerprint(t *testing.T) {
	// The first 8 hex digits of SHA-256("RT-SECRET"), as refresh.Fingerprint.
	if got, want := Fingerprint("RT-SECRET"), "11e938a5"; got != want {
		t.Errorf("Fingerprint = %q, want %q", got, want)
	}
	if got := Fingerprint(""); got != "" {
		t.Errorf(`Fingerprint("") = %q, want ""`, got)
	}
}

func TestZeroSecrets(t *testing.T) {
	var s Secrets
	if got := s.String(sec); got != sec {
		t.Errorf("got %q, want the input", got)
	}
	if got := s.WithFingerprints().String(sec); got != sec {
		t.Errorf("got %q, want the input", got)
	}
}

func TestField(t *testing.T) {
	long := strings.Repeat("x", 200)
	s := New("RT-SECRET")
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "invalid grant", 100, "invalid grant"},
		{"white space", " a \t\r\n b\u2028c ", 100, "a b c"},
		{"control characters", "a\x00b\x07c\x1b[31md\x7fe", 100, "abc[31mde"},
		{"format characters", "abc\u202edef\u200bg", 100, "abcdefg"},
		{"invalid UTF-8", "a\xffb\xc3", 100, "ab"},
		{"secret", "token RT-SECRET was revoked", 100, "token [redacted] was revoked"},
		{"secret split by a control character", "RT-SE\x00CRET!", 100, "[redacted]!"},
		{"secret split by a line break", "RT-SE\nCRET", 100, "RT-SE CRET"},
		{"secret with invalid UTF-8 inside", "RT-SE\xffCRET", 100, "[redacted]"},
		{"escaped secret", `RT-SECRET\u0021`, 100, `[redacted]\u0021`},
		{"not cut", long[:100], 100, long[:100]},
		{"cut", long, 100, long[:97] + "…"},
		{"cut on a rune boundary", strings.Repeat("é", 60), 100, strings.Repeat("é", 48) + "…"},
		{"cut drops a trailing space", strings.Repeat("x", 96) + " yyyy", 100, strings.Repeat("x", 96) + "…"},
		{"cut after redaction", strings.Repeat("RT-SECRET ", 20), 30, "[redacted] [redacted] [reda…"},
		{"cut to nothing", "abcdef", 2, ""},
		{"empty", "", 10, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Field(tt.in, tt.max, s)
			if got != tt.want {
				t.Errorf("Field(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max {
				t.Errorf("got %d bytes, want at most %d", len(got), tt.max)
			}
		})
	}
}
