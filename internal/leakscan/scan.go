// Package leakscan finds token and secret values in text, in any of the
// encodings they could be printed in: as they are, URL-encoded,
// JSON-escaped, base64 (any alphabet, any alignment) or hex. It knows the
// shapes of the tokens and secrets of this repository's tests; the command
// internal/cmd/leakscan runs it over test output and logs in CI.
package leakscan

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// patterns are the shapes of the tokens and secrets of this repository's
// tests.
var patterns = []*regexp.Regexp{
	regexp.MustCompile(`\b(at|rt)-[0-9]+-[0-9]+-[0-9a-f]{16}\b`), // refreshtest
	regexp.MustCompile(`\bidt-[0-9]+-[0-9]+-[0-9a-f]{16}\b`),     // the ID tokens tests have refreshtest send (Options.Extra)
	regexp.MustCompile(`refreshtest-secret/\+= &`),               // refreshtest.DefaultClientSecret
	regexp.MustCompile(`\b(at|rt)-[0-9]+-secretvalue\b`),         // the root package's authServer
	regexp.MustCompile(`client-secret-value`),
	// A signed JWT, such as a client assertion: a JSON header, a JSON
	// payload and a signature.
	regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}`),
}

// A Scanner finds secrets in lines of text.
type Scanner struct {
	secrets []string
}

// New returns a Scanner for the given secret values (those shorter than 8
// bytes are ignored: they would match ordinary text) and the built-in
// patterns.
func New(secrets ...string) *Scanner {
	var s []string
	for _, sec := range secrets {
		if len(sec) >= 8 { // shorter values would match ordinary text
			s = append(s, sec)
		}
	}
	return &Scanner{secrets: s}
}

// A view is a decoding of (part of) a line.
type view struct {
	encoding string
	text     string
}

// Scan returns a description of each leak in line, naming the pattern or
// the fingerprint of the value and the encoding, never the value.
func (s *Scanner) Scan(line string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range views(line) {
		for _, m := range s.matches(v.text) {
			d := fmt.Sprintf("%s (%s)", m, v.encoding)
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}

// matches describes what s finds in text, by pattern or fingerprint.
func (s *Scanner) matches(text string) []string {
	var out []string
	for _, p := range patterns {
		for _, m := range p.FindAllString(text, -1) {
			out = append(out, fmt.Sprintf("pattern %s matches value %s", p, fingerprint(m)))
		}
	}
	for _, sec := range s.secrets {
		if strings.Contains(text, sec) {
			out = append(out, "secret "+fingerprint(sec))
		}
	}
	return out
}

func fingerprint(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:4])
}

// views returns line as it is and every decoding of it, or of its parts,
// that a secret could hide in.
func views(line string) []view {
	vs := []view{{"raw", line}}
	if u, err := url.QueryUnescape(line); err == nil && u != line {
		vs = append(vs, view{"url", u})
	}
	if u := percentDecode(line); u != line { // keeps '+', which QueryUnescape turns into ' '
		vs = append(vs, view{"url", u})
	}
	if j := jsonUnescape(line); j != line {
		vs = append(vs, view{"json", j})
	}
	for _, run := range runs(line, isBase64) {
		for _, d := range decodeBase64(run) {
			vs = append(vs, view{"base64", d})
		}
	}
	for _, run := range runs(line, isHex) {
		for off := 0; off < 2 && off < len(run); off++ {
			r := run[off:]
			if b, err := hex.DecodeString(r[:len(r)/2*2]); err == nil {
				vs = append(vs, view{"hex", string(b)})
			}
		}
	}
	return vs
}

// runs returns the maximal runs of at least 12 bytes of s for which in
// holds.
func runs(s string, in func(byte) bool) []string {
	var out []string
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && in(s[i]) {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 && i-start >= 12 {
			out = append(out, s[start:i])
		}
		start = -1
	}
	return out
}

func isBase64(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("+/-_=", c) >= 0
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// decodeBase64 decodes run, in both alphabets, from each of its first four
// characters: a secret inside a longer base64 text starts anywhere.
func decodeBase64(run string) []string {
	var out []string
	run = strings.TrimRight(run, "=")
	for off := 0; off < 4 && off < len(run); off++ {
		r := run[off:]
		r = r[:len(r)/4*4+min(len(r)%4, 3)]
		if len(r)%4 == 1 {
			r = r[:len(r)-1]
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(r); err == nil {
				out = append(out, string(b))
			}
		}
	}
	return out
}

// percentDecode decodes %XX escapes, leaving malformed ones as they are.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// jsonUnescape undoes the escapes of a JSON string (\/, \uXXXX, \", \\),
// wherever they are in s, leaving the rest as it is.
func jsonUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch c := s[i+1]; c {
		case '/', '"', '\\':
			b.WriteByte(c)
			i++
		case 'u':
			if i+5 < len(s) {
				if v, err := strconv.ParseUint(s[i+2:i+6], 16, 16); err == nil {
					b.WriteRune(rune(v))
					i += 5
					continue
				}
			}
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
		}
	}
	return b.String()
}
