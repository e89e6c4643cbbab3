package redact

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A view is a text in which forms are searched: the input itself, or the
// input with one kind of escape decoded.
type view struct {
	text string
	// at[d] is the offset in the input of the escape (or plain byte) that
	// byte d of text comes from, and at[len(text)] = len(input); nil when
	// text is the input itself.
	at []int32
}

// views returns the input, and the decoded views that differ from it.
func views(in string) []view {
	vs := []view{{text: in}}
	if strings.IndexByte(in, '\\') >= 0 {
		vs = append(vs, decode(in, jsonEscape))
	}
	if strings.Contains(in, `\\`) {
		// After "\\" the next backslash starts a new escape, so the
		// decoded text does not show what a reader sees in `\\u002F`:
		// an escaped "/". A view that takes "\\" as two backslashes does.
		vs = append(vs, decode(in, func(b []byte, in string, i int) ([]byte, int) {
			if in[i] == '\\' && i+1 < len(in) && in[i+1] == '\\' {
				return b, 0
			}
			return jsonEscape(b, in, i)
		}))
	}
	if strings.IndexByte(in, '%') >= 0 {
		vs = append(vs, decode(in, percentEscape))
	}
	return vs
}

// swallowed returns where, in the input, the escape starts whose decoded
// bytes end just before byte d of v.text, if that escape also takes the
// input bytes lead from the text that follows it: lead is then the start of
// an escaped secret whose rest begins at d.
func (v view) swallowed(in string, d int, lead string) (int, bool) {
	if v.at == nil || d == 0 {
		return 0, false
	}
	start, end := int(v.at[d-1]), int(v.at[d])
	if end-start <= len(lead) || in[end-len(lead):end] != lead {
		return 0, false
	}
	return start, true
}

// maxHeadRunes bounds the characters of a head (see unpaired), and
// maxHeadSpan their JSON spelling: each at most a surrogate pair of \u
// escapes.
const (
	maxHeadRunes = 8
	maxHeadSpan  = 12 * maxHeadRunes
)

// unpaired returns where, in the input, a JSON spelling of head begins
// that ends just before byte d of v.text, if there is one: a spelling that
// starts with a backslash inside a run of them, so that decoding paired
// that backslash with the one before it and read head otherwise (in
// `\\u0026…` a reader sees `\u0026…`, "&…" escaped, but decoding reads
// `\\` and then "u0026"). Past the run and the escape that ends it,
// decoding is back in step, and d starts the rest of the secret.
func (v view) unpaired(in string, d int, head string) (int, bool) {
	if v.at == nil || d > 0 && v.at[d-1] == v.at[d] {
		return 0, false // not the start of an escape or plain byte
	}
	// The spelling of each character takes 2 to 12 bytes (escaped) and the
	// stray backslash is just before it.
	p, n := int(v.at[d]), utf8.RuneCountInString(head)
	for b := p - n; b >= max(1, p-12*n); b-- {
		if in[b] == '\\' && in[b-1] == '\\' && decodesTo(in[b:p], head) {
			return b, true
		}
	}
	return 0, false
}

// decodesTo reports whether the JSON string text s decodes to want.
func decodesTo(s, want string) bool {
	var buf [maxHeadSpan]byte
	got := buf[:0]
	for i := 0; i < len(s); {
		var n int
		if got, n = jsonEscape(got, s, i); n == 0 {
			got, n = append(got, s[i]), 1
		}
		i += n
		if len(got) > len(want) || string(got) != want[:len(got)] {
			return false
		}
	}
	return string(got) == want
}

// span returns the bytes of the input that the bytes [lo, hi) of v.text
// come from: whole escapes, so that no part of one is left behind.
func (v view) span(lo, hi int) (int, int) {
	if v.at == nil {
		return lo, hi
	}
	last := v.at[hi-1]
	for hi < len(v.text) && v.at[hi] == last {
		hi++ // the rest of a character that one escape encodes
	}
	return int(v.at[lo]), int(v.at[hi])
}

// An escape decodes the escape at in[i:], if there is one, appending its
// bytes to b; n is how many bytes of in it takes, or 0 if none starts at i.
type escape func(b []byte, in string, i int) (_ []byte, n int)

// decode returns the view of in with every escape that esc knows decoded.
func decode(in string, esc escape) view {
	b := make([]byte, 0, len(in))
	at := make([]int32, 0, len(in)+1)
	for i := 0; i < len(in); {
		n0 := len(b)
		var n int
		if b, n = esc(b, in, i); n == 0 {
			b, n = append(b, in[i]), 1
		}
		for range len(b) - n0 {
			at = append(at, int32(i))
		}
		i += n
	}
	return view{text: string(b), at: append(at, int32(len(in)))}
}

// percentEscape decodes "%XX" (either case), as URLs and form bodies write
// any byte. A "+" stays as it is: it is a space only in form bodies, and
// the forms include the secret with its spaces as "+".
func percentEscape(b []byte, in string, i int) ([]byte, int) {
	if in[i] != '%' || i+2 >= len(in) {
		return b, 0
	}
	hi, ok1 := unhex(in[i+1])
	lo, ok2 := unhex(in[i+2])
	if !ok1 || !ok2 {
		return b, 0
	}
	return append(b, hi<<4|lo), 3
}

// jsonEscape decodes the escapes of a JSON string (RFC 8259, Section 7):
// the short ones, and "\uXXXX" in either case, with a surrogate pair as one
// character. A lone surrogate becomes U+FFFD, as encoding/json reads it.
func jsonEscape(b []byte, in string, i int) ([]byte, int) {
	if in[i] != '\\' || i+1 >= len(in) {
		return b, 0
	}
	switch c := in[i+1]; c {
	case '"', '\\', '/':
		return append(b, c), 2
	case 'b':
		return append(b, '\b'), 2
	case 'f':
		return append(b, '\f'), 2
	case 'n':
		return append(b, '\n'), 2
	case 'r':
		return append(b, '\r'), 2
	case 't':
		return append(b, '\t'), 2
	case 'u':
		r, ok := hex4(in, i+2)
		if !ok {
			return b, 0
		}
		n := 6
		if utf16.IsSurrogate(r) {
			r2, ok := rune(0), false
			if i+7 < len(in) && in[i+6] == '\\' && in[i+7] == 'u' {
				r2, ok = hex4(in, i+8)
			}
			if r = utf16.DecodeRune(r, r2); ok && r != utf8.RuneError {
				n = 12
			}
		}
		return utf8.AppendRune(b, r), n
	}
	return b, 0
}

// hex4 reads the four hex digits at in[i:].
func hex4(in string, i int) (rune, bool) {
	if i+4 > len(in) {
		return 0, false
	}
	var r rune
	for k := i; k < i+4; k++ {
		d, ok := unhex(in[k])
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
