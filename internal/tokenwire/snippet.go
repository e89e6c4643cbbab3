package tokenwire

import (
	"html"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	snippetMax = 120
	redacted   = "[redacted]"
	ellipsis   = "…"
)

// Snippet returns a short, printable excerpt of a non-2xx body for
// diagnostics: at most 120 bytes (cut on a UTF-8 boundary, "…" appended when
// cut, within the 120 bytes), whitespace runs collapsed to one space and
// trimmed, control and other non-printable characters and invalid UTF-8
// removed, HTML tags and comments stripped (keeping the text between them,
// but not the code inside script and style elements), HTML character
// references decoded, and every occurrence of each non-empty secret
// (len >= 4) replaced by "[redacted]". Secrets are also found URL-encoded or
// with "/" escaped as in JSON. Returns "" for an empty body.
func Snippet(body []byte, secrets ...string) string {
	secrets = secretForms(secrets)
	// Redact before and after the clean-up: before, so that stripping tags or
	// collapsing spaces cannot split a secret into pieces that escape, and
	// after, for a secret that only appears once character references are
	// decoded.
	s := redact(string(body), secrets)
	s = collapse(html.UnescapeString(stripTags(s)))
	return cut(redact(s, secrets), snippetMax)
}

// secretForms returns the secrets to look for: each usable secret as is,
// URL-encoded (as in a form body) and with "/" escaped (as some JSON encoders
// write it).
func secretForms(secrets []string) []string {
	var forms []string
	for _, s := range secrets {
		if len(s) < 4 {
			continue // too short to redact without mangling the text
		}
		forms = append(forms, s)
		for _, f := range []string{url.QueryEscape(s), strings.ReplaceAll(s, "/", `\/`)} {
			if f != s {
				forms = append(forms, f)
			}
		}
	}
	return forms
}

// redact replaces each run of bytes covered by occurrences of the secrets
// with "[redacted]". Marking bytes first makes overlapping secrets, and a
// secret that is part of another, disappear completely.
func redact(s string, secrets []string) string {
	var hide []bool // whether each byte of s belongs to a secret; nil until one is found
	for _, sec := range secrets {
		end := 0 // bytes before end are already marked for this secret
		for i := strings.Index(s, sec); i >= 0; {
			if hide == nil {
				hide = make([]bool, len(s))
			}
			for k := max(i, end); k < i+len(sec); k++ {
				hide[k] = true
			}
			end = i + len(sec)
			j := strings.Index(s[i+1:], sec)
			if j < 0 {
				break
			}
			i += 1 + j
		}
	}
	if hide == nil {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if !hide[i] {
			b.WriteByte(s[i])
			continue
		}
		b.WriteString(redacted)
		for i+1 < len(s) && hide[i+1] {
			i++
		}
	}
	return b.String()
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

// collapse turns each run of white space into one space, trims the ends,
// and removes invalid UTF-8 and non-printable characters: control
// characters could forge log lines and format characters (such as bidi
// overrides) could disguise them.
func collapse(s string) string {
	var b strings.Builder
	space := false
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
		case r == utf8.RuneError && n == 1, !unicode.IsPrint(r):
		default:
			if space {
				b.WriteByte(' ')
				space = false
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cut shortens s to at most n bytes, ellipsis included, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimRight(s[:n], " ") + ellipsis
}
