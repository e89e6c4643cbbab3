package redact

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Ellipsis ends a field that [Field] shortened.
const Ellipsis = "…"

// Field makes a field that came from a server or a store (an error
// description, a response excerpt) safe to put in an error, a log line or
// an event: it hides secrets, turns each run of white space (line breaks
// included) into one space and trims the ends, removes invalid UTF-8 and
// other non-printable characters (control characters could forge log lines;
// format characters such as bidi overrides could disguise them), and
// shortens the result to at most max bytes, cut on a UTF-8 boundary with
// [Ellipsis] (counted in max) appended when cut. A max smaller than
// len(Ellipsis) gives "" for anything that does not fit.
//
// Secrets are hidden both before the clean-up, so that removing characters
// or collapsing spaces cannot split one into pieces that escape, and after
// it, for one that only appears once the characters around it are gone.
// The result is cut last, so a cut never leaves part of a secret.
//
// Of a longer input only the first [MaxFieldInput] bytes are looked at (see
// [Secrets.Head]), which bounds the cost.
func Field(in string, max int, secrets Secrets) string {
	s := clean(secrets.String(secrets.Head(in, MaxFieldInput)))
	return cut(secrets.String(s), max)
}

// MaxFieldInput is how much of its input [Field] looks at.
const MaxFieldInput = 64 << 10

// Head returns in, or its first bytes if it is longer than n: fewer than n,
// so that no spelling of a secret is cut in two and a part of it kept (a
// spelling takes at most 12 bytes for each byte of the secret, its JSON
// surrogate pairs).
func (s Secrets) Head(in string, n int) string {
	if len(in) <= n {
		return in
	}
	return in[:max(n-12*s.longest, 0)]
}

// clean collapses white space and removes invalid UTF-8 and non-printable
// characters.
func clean(s string) string {
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
	n -= len(Ellipsis)
	if n < 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.TrimRight(s[:n], " ") + Ellipsis
}
