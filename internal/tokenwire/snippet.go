package tokenwire

import (
	"html"
	"strings"

	"github.com/oauthkit/refresh/internal/redact"
)

const (
	snippetMax = 120
	redacted   = redact.Marker
	ellipsis   = redact.Ellipsis
)

// Snippet returns a short, printable excerpt of a non-2xx body for
// diagnostics: at most 120 bytes (cut on a UTF-8 boundary, "…" appended when
// cut, within the 120 bytes), whitespace runs collapsed to one space and
// trimmed, control and other non-printable characters and invalid UTF-8
// removed, HTML tags and comments stripped (keeping the text between them,
// but not the code inside script and style elements), HTML character
// references decoded, and every occurrence of each non-empty secret
// (len >= 4) replaced by "[redacted]". Secrets are found in every spelling
// [redact.Secrets.String] knows: URL-encoded, JSON-escaped, base64, hex.
// Only the first 64 KiB of the body are looked at. Returns "" for an empty
// body.
func Snippet(body []byte, secrets ...string) string {
	sec := redact.New(secrets...)
	// Redact before the clean-up too, so that stripping tags cannot split
	// a secret into pieces that escape; redact.Field redacts again once
	// character references are decoded, and after its own clean-up.
	s := sec.String(sec.Head(string(body), redact.MaxFieldInput))
	return redact.Field(html.UnescapeString(stripTags(s)), snippetMax, sec)
}

// stripTags replaces each HTML tag and comment with a space. It drops the
// contents of script and style elements, which are code rather than
// message, and an unterminated tag at the end. A '<' that cannot start a tag
// ("a < b") is kept.
func stripTags(s string) string {
	lower := asciiLower(s) // same offsets as s, for case-insensitive search
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s, lower = s[i:], lower[i:]
		if len(s) < 2 || !isTagStart(lower[1]) {
			b.WriteByte('<')
			s, lower = s[1:], lower[1:]
			continue
		}
		end := ">"
		if strings.HasPrefix(lower, "<!--") {
			end = "-->"
		}
		j := strings.Index(lower, end)
		if j < 0 {
			return b.String()
		}
		j += len(end)
		if name := tagName(lower); name == "script" || name == "style" {
			k := strings.Index(lower[j:], "</"+name)
			if k < 0 {
				return b.String()
			}
			j += k
		}
		b.WriteByte(' ')
		s, lower = s[j:], lower[j:]
	}
}

func isTagStart(c byte) bool {
	return c == '/' || c == '!' || c == '?' || 'a' <= c && c <= 'z'
}

// tagName returns the name of the start tag at the beginning of s, or "" if
// s starts with some other markup.
func tagName(s string) string {
	n := 1
	for n < len(s) && ('a' <= s[n] && s[n] <= 'z' || '0' <= s[n] && s[n] <= '9') {
		n++
	}
	return s[1:n]
}

// asciiLower lower-cases ASCII letters only, so that offsets into the result
// are offsets into s (strings.ToLower may change lengths).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
