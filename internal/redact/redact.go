package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
)

const (
	// Marker replaces each run of hidden bytes, unless the Secrets were
	// made [Secrets.WithFingerprints].
	Marker = "[redacted]"

	// MinLen is the length, in bytes, of the shortest secret that is
	// hidden: a shorter one would match ordinary text too often (a secret
	// "abc" would eat every "abc"), and no real token is that short. It is
	// the rule tokenwire.Snippet and the engine's error descriptions had.
	MinLen = 4
)

// Secrets is a set of secret values to hide, with their encoded forms
// worked out once. The zero value hides nothing. A Secrets is read-only and
// safe for concurrent use.
type Secrets struct {
	forms        []form   // every form of every secret; none twice
	fingerprints []string // Fingerprint of each secret, indexed by form.owner
	tagged       bool     // mark with "[token <fingerprint>]" instead of Marker
	longest      int      // the length of the longest secret
}

// New returns the Secrets that hide each of values, with [Marker]. Values
// shorter than [MinLen] bytes, and repeated values, are ignored.
func New(values ...string) Secrets {
	var s Secrets
	seenValue := make(map[string]bool)
	seenForm := make(map[form]bool)
	for _, v := range values {
		if len(v) < MinLen || seenValue[v] {
			continue
		}
		seenValue[v] = true
		s.longest = max(s.longest, len(v))
		owner := len(s.fingerprints)
		s.fingerprints = append(s.fingerprints, Fingerprint(v))
		for _, f := range formsOf(v, owner) {
			key := f
			key.owner = 0 // one text is searched once, whoever it belongs to
			if !seenForm[key] {
				seenForm[key] = true
				s.forms = append(s.forms, f)
			}
		}
	}
	return s
}

// WithFingerprints returns a copy of s that replaces each run of hidden
// bytes with "[token <fingerprint>]" for each secret in it, as the engine's
// errors name tokens, instead of [Marker].
func (s Secrets) WithFingerprints() Secrets {
	s.tagged = true
	return s
}

// Fingerprint returns a short, stable, non-reversible identifier of a
// secret: the first 8 hex digits of its SHA-256, as refresh.Fingerprint. It
// returns "" for "".
func Fingerprint(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:4])
}

// maxInput is the longest input whose bytes the marks can address.
const maxInput = math.MaxInt32

// String returns in with every occurrence of every form of every secret
// replaced: each run of bytes that belongs to occurrences becomes one
// [Marker] (or, [Secrets.WithFingerprints], one "[token <fingerprint>]" for
// each secret in the run, in order). An input of 2 GiB or more, which no
// caller passes, becomes one Marker if s hides anything.
func (s Secrets) String(in string) string {
	if len(s.forms) == 0 || in == "" {
		return in
	}
	if len(in) > maxInput {
		return Marker
	}
	var m marks
	for _, v := range views(in) {
		for _, f := range s.forms {
			// Occurrences come in order and their spans grow in order,
			// so bytes before end are marked already: marking costs
			// O(len(in)) for each form, however the occurrences overlap.
			if f.lead != "" && v.at == nil {
				continue
			}
			end := 0
			for i := range f.occurrences(v.text) {
				lo, hi := v.span(f.widen(v.text, i, i+len(f.text)))
				if f.lead != "" {
					var ok bool
					if f.escaped {
						lo, ok = v.unpaired(in, i, f.lead)
					} else {
						lo, ok = v.swallowed(in, i, f.lead)
					}
					if !ok {
						continue
					}
				}
				m.set(len(in), max(lo, end), hi, f.owner)
				end = max(end, hi)
			}
		}
	}
	if m == nil {
		return in
	}
	return s.replace(in, m)
}

// marks records, for each byte of the input, 1 + the owner of the first
// occurrence that covers it, or 0. It is nil until an occurrence is found.
type marks []int32

// set marks the bytes [lo, hi) of an input of n bytes as owner's, where
// they are not marked yet.
func (m *marks) set(n, lo, hi, owner int) {
	if *m == nil {
		*m = make(marks, n)
	}
	for k := lo; k < hi; k++ {
		if (*m)[k] == 0 {
			(*m)[k] = int32(owner) + 1
		}
	}
}

// replace writes in with each run of marked bytes replaced by markers.
func (s Secrets) replace(in string, m marks) string {
	var b strings.Builder
	for i := 0; i < len(in); {
		j := i
		if m[i] == 0 {
			for j < len(in) && m[j] == 0 {
				j++
			}
			b.WriteString(in[i:j])
			i = j
			continue
		}
		if !s.tagged {
			for j < len(in) && m[j] != 0 {
				j++
			}
			b.WriteString(Marker)
			i = j
			continue
		}
		for j < len(in) && m[j] == m[i] {
			j++
		}
		b.WriteString("[token " + s.fingerprints[m[i]-1] + "]")
		i = j
	}
	return b.String()
}
