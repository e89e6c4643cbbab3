package redact

import (
	"encoding/base64"
	"encoding/hex"
	"iter"
	"strings"
	"unicode/utf8"
)

// minFormLen is the length of the shortest base64 or hex form searched
// for. Six base64 characters hold 36 bits: ordinary text matches one by
// chance about once in 2^36 positions, and every secret of 5 bytes or more
// gets a form at each base64 alignment.
const minFormLen = 6

// A form is one spelling of a secret that is searched for.
type form struct {
	text   string
	owner  int // index of the secret in Secrets.fingerprints
	period int // smallest p > 0 with text[i] == text[i+p] for every i; len(text) if none

	// For a base64 form: its alphabet, and whether the characters just
	// before and after it carry some of the secret's bits (the secret does
	// not start, or end, on a character boundary).
	alphabet      string
	before, after bool

	// For a tail form, the secret's first bytes that text lacks: it is
	// searched in decoded views only, where an escape that starts before
	// the secret ends with lead (see leadsOf). With escaped set, lead is
	// the secret's first characters instead, spelled in JSON after a
	// stray backslash (see view.unpaired).
	lead    string
	escaped bool
}

const (
	stdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// formsOf returns the forms of secret that are searched in each view of an
// input: the raw secret (percent- and JSON-escaped spellings are found in
// the decoded views), its form-encoded spelling, hex and base64.
func formsOf(secret string, owner int) []form {
	fs := []form{{text: secret, owner: owner}}
	if strings.Contains(secret, " ") {
		// application/x-www-form-urlencoded writes a space as "+".
		fs = append(fs, form{text: strings.ReplaceAll(secret, " ", "+"), owner: owner})
	}
	h := hex.EncodeToString([]byte(secret)) // at least 2*MinLen = 8 characters
	fs = append(fs, form{text: h, owner: owner}, form{text: strings.ToUpper(h), owner: owner})
	for _, alphabet := range []string{stdAlphabet, urlAlphabet} {
		enc := base64.NewEncoding(alphabet).WithPadding(base64.NoPadding)
		for k := range 3 {
			// Encode secret after k bytes of anything: character c
			// holds bits [6c, 6c+6) of the blob, and only those within
			// the secret's bits [8k, 8(k+len)) depend on it alone.
			blob := enc.EncodeToString(append(make([]byte, k), secret...))
			lo, hi := (8*k+5)/6, 8*(k+len(secret))/6
			if hi-lo < minFormLen {
				continue
			}
			fs = append(fs, form{
				text:     blob[lo:hi],
				owner:    owner,
				alphabet: alphabet,
				before:   k > 0,
				after:    (k+len(secret))%3 != 0,
			})
		}
	}
	// Any form may lose its first bytes to an escape just before it (see
	// leadsOf): its rest is searched too. Not the hex forms, which no
	// encoder escapes, so that the raw input shows them whole.
	for _, f := range fs {
		if f.text == h || f.text == strings.ToUpper(h) {
			continue
		}
		for _, lead := range leadsOf(f.text) {
			tail := f
			tail.text, tail.lead = f.text[len(lead):], lead
			fs = append(fs, tail)
		}
		// The first characters, spelled in JSON after a stray backslash
		// (see view.unpaired): the backslashes the form starts with (each
		// spelled "\\\\" extends the run of them) and the character after.
		n, heads := 0, min(1+len(f.text)-len(strings.TrimLeft(f.text, `\`)), maxHeadRunes)
		for range heads {
			if _, size := utf8.DecodeRuneInString(f.text[n:]); n+size < len(f.text) {
				n += size
				tail := f
				tail.text, tail.lead, tail.escaped = f.text[n:], f.text[:n], true
				fs = append(fs, tail)
			}
		}
	}
	for i := range fs {
		fs[i].period = period(fs[i].text)
	}
	return fs
}

// leadsOf returns the prefixes of secret that an escape starting just
// before it could swallow, so that the decoded view does not show the
// secret whole: "%" before "b0%E2%80%A8" reads as the byte "%b0" followed
// by U+2028, and "\" before "n\u00e9…" as a line feed. Such a prefix is
// one to four hex digits (the end of "%XY" or "\uXXXX"), "u" and four hex
// digits (the end of "\uXXXX", or of a surrogate pair's second half), or
// one character of a short JSON escape. A longer swallowed prefix would
// hold a backslash or "%", which the escaped spellings of a secret write
// as an escape of their own, which cannot be swallowed.
func leadsOf(secret string) []string {
	var leads []string
	n := 0 // hex digits at the start of secret
	for n < 4 && n < len(secret)-1 && isHex(secret[n]) {
		n++
		leads = append(leads, secret[:n])
	}
	if n == 0 && len(secret) > 1 && strings.IndexByte(`"\/bfnrt`, secret[0]) >= 0 {
		leads = append(leads, secret[:1])
	}
	if len(secret) > 5 && secret[0] == 'u' && isHex(secret[1]) && isHex(secret[2]) && isHex(secret[3]) && isHex(secret[4]) {
		leads = append(leads, secret[:5])
	}
	return leads
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

// period returns the smallest period of s (the Knuth-Morris-Pratt failure
// function: s minus its longest proper border).
func period(s string) int {
	border := make([]int, len(s)+1) // border[i]: longest proper border of s[:i]
	border[0] = -1
	for i := 1; i <= len(s); i++ {
		k := border[i-1]
		for k >= 0 && s[k] != s[i-1] {
			k = border[k]
		}
		border[i] = k + 1
	}
	return len(s) - border[len(s)]
}

// occurrences yields the start of each occurrence of f.text in t, in order,
// overlapping ones included, in O(len(t)) steps beyond the strings.Index
// searches: two occurrences closer than len(f.text) are a multiple of the
// period apart, so after one at i the next is either at i+period, found by
// comparing the period's bytes that lie past the first occurrence, or
// further on than that, found by strings.Index. Restarting strings.Index at
// i+1 instead would cost len(f.text) for each occurrence of a periodic
// secret ("aaaa…") in text made of it.
func (f form) occurrences(t string) iter.Seq[int] {
	return func(yield func(int) bool) {
		m, p := len(f.text), f.period
		for i := strings.Index(t, f.text); i >= 0; {
			if !yield(i) {
				return
			}
			if i+p+m <= len(t) && t[i+m:i+m+p] == f.text[m-p:] {
				i += p
				continue
			}
			if i+p+1 > len(t) {
				return
			}
			j := strings.Index(t[i+p+1:], f.text)
			if j < 0 {
				return
			}
			i += p + 1 + j
		}
	}
}

// widen returns the bytes of text to hide for an occurrence of f at
// [lo, hi): for a base64 form, also the character on each side that shares
// bits with the secret, and the "=" padding that may follow.
func (f form) widen(text string, lo, hi int) (int, int) {
	if f.alphabet == "" {
		return lo, hi
	}
	if f.before && lo > 0 && strings.IndexByte(f.alphabet, text[lo-1]) >= 0 {
		lo--
	}
	if f.after && hi < len(text) && strings.IndexByte(f.alphabet, text[hi]) >= 0 {
		hi++
		// Padding follows only a blob that ends off a boundary.
		for n := 0; n < 2 && hi < len(text) && text[hi] == '='; n++ {
			hi++
		}
	}
	return lo, hi
}
