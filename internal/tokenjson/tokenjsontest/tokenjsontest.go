// Package tokenjsontest helps test the stores that keep tokens in the
// tokenjson format: a variety of tokens and keys to seed fuzz targets with,
// an independent reading of a record to check a decoded token against, and
// a check that an error does not depend on, nor show, the token values in
// the data.
package tokenjsontest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/tokenjson"
)

// A Record is a key and its token.
type Record struct {
	Key string
	Tok *oauth2.Token
}

// Records returns keys and tokens of every kind a store must keep: keys
// empty, long, not valid UTF-8 (which the format keeps in "key_base64"),
// and with U+FFFD in them; token values with escapes and non-ASCII
// characters; expiries with and without nanoseconds, in other zones, at
// the ends of the years the format can hold.
func Records() []Record {
	zone := time.FixedZone("x", -(3*3600 + 30*60))
	return []Record{
		{"alice", &oauth2.Token{AccessToken: "access-a", TokenType: "Bearer", RefreshToken: "refresh-a",
			Expiry: time.Date(2031, 5, 6, 7, 8, 9, 123456789, zone), ExpiresIn: 3600}},
		{"", &oauth2.Token{AccessToken: "a"}},
		{"k", &oauth2.Token{AccessToken: "", RefreshToken: "r", TokenType: "DPoP"}},
		{"\xff", &oauth2.Token{AccessToken: "a", Expiry: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)}},
		{"\xff\xfe", &oauth2.Token{AccessToken: "a", ExpiresIn: -1}},
		{"\ufffd", &oauth2.Token{AccessToken: "a"}},
		{"a\xe2\x82b\x00", &oauth2.Token{AccessToken: "a", Expiry: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}},
		{"日本語/../\"quoted\"\\", &oauth2.Token{AccessToken: "ü\"\\\n\t\u2028<>&", RefreshToken: "\U0001F600",
			Expiry: time.Unix(1<<31, 0)}},
		// Long, but not so long that the fuzzer spends its time
		// minimizing what it derives from them.
		{strings.Repeat("k", 200), &oauth2.Token{AccessToken: strings.Repeat("a", 300), RefreshToken: "r", ExpiresIn: 1 << 62}},
	}
}

// Reference reads a record as its members say, leniently, without the
// checks of tokenjson.Decode: it returns the key it is for ("key_base64"
// decoded if there is one, else "key") and its token. ok is false if data
// is not a JSON object of the members' types. A token that Decode accepts
// must be this one, for this key.
func Reference(data []byte) (key string, tok *oauth2.Token, ok bool) {
	var r struct {
		Key          string  `json:"key"`
		KeyBase64    *string `json:"key_base64"`
		AccessToken  string  `json:"access_token"`
		TokenType    string  `json:"token_type"`
		RefreshToken string  `json:"refresh_token"`
		Expiry       string  `json:"expiry"`
		ExpiresIn    int64   `json:"expires_in"`
	}
	if json.Unmarshal(data, &r) != nil {
		return "", nil, false
	}
	key = r.Key
	if r.KeyBase64 != nil {
		b, err := base64.StdEncoding.DecodeString(*r.KeyBase64)
		if err != nil {
			return "", nil, false
		}
		key = string(b)
	}
	tok = &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken, ExpiresIn: r.ExpiresIn}
	if r.Expiry != "" {
		t, err := time.Parse(time.RFC3339Nano, r.Expiry)
		if err != nil {
			return "", nil, false
		}
		tok.Expiry = t
	}
	return key, tok, true
}

// CheckAccepted checks got, the token decoded from data for key: data must
// be the record of key (see Reference), got its token, with the expiry in
// UTC, and data what tokenjson.Encode writes for it, but for white space,
// the order of the members, escapes, the spelling of the expiry, and the
// members older writers left out (token_type, refresh_token, expires_in).
func CheckAccepted(t testing.TB, key string, data []byte, got *oauth2.Token) {
	t.Helper()
	refKey, want, ok := Reference(data)
	switch {
	case !ok:
		t.Fatalf("a record that does not read as one was accepted")
	case refKey != key:
		t.Fatalf("the record of key %q was accepted for key %q", refKey, key)
	case !Same(got, want):
		t.Errorf("the token returned differs from the record's")
	case !got.Expiry.IsZero() && got.Expiry.Location() != time.UTC:
		t.Errorf("the expiry returned is in %v, want UTC", got.Expiry.Location())
	}
	encoded, err := tokenjson.Encode(key, got)
	if err != nil {
		t.Fatalf("Encode of an accepted token: %v", err)
	}
	have, written := members(data), members(encoded)
	missing := make(map[string]bool)
	for _, m := range written {
		missing[m.name] = true
	}
	for i, m := range have {
		if !missing[m.name] {
			t.Errorf("member %d is not one that Encode writes for this token, or is written twice, yet the record was accepted", i+1)
		}
		delete(missing, m.name)
	}
	for name := range missing {
		if name != "token_type" && name != "refresh_token" && name != "expires_in" {
			t.Errorf("the record lacks member %q, yet it was accepted", name)
		}
	}
	var k1, k2 string
	json.Unmarshal(have.value("key"), &k1)
	json.Unmarshal(written.value("key"), &k2)
	if k1 != k2 {
		t.Errorf(`the record's "key" is not the one Encode writes for its key, yet it was accepted`)
	}
}

// member is a member of a JSON object.
type member struct {
	name  string
	value json.RawMessage // as in the data
	end   int             // the offset in the data just past value
}

// memberList is the members of a JSON object, in order, repeats included.
type memberList []member

// members returns the top-level members of data, a JSON object, in
// order, as far as data can be read.
func members(data []byte) memberList {
	var list memberList
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		name, _ := t.(string)
		list = append(list, member{name, raw, int(dec.InputOffset())})
	}
	return list
}

// value returns the value of the first member named name, or nil.
func (l memberList) value(name string) json.RawMessage {
	for _, m := range l {
		if m.name == name {
			return m.value
		}
	}
	return nil
}

// Same reports whether a and b have equal exported fields (but Extra).
func Same(a, b *oauth2.Token) bool {
	return a.AccessToken == b.AccessToken && a.TokenType == b.TokenType &&
		a.RefreshToken == b.RefreshToken && a.ExpiresIn == b.ExpiresIn &&
		a.Expiry.Equal(b.Expiry)
}

// CheckError checks err, the error of decoding data, against errOf, which
// decodes other data the same way: the error must be the same for data
// whose token values are disguised (so it depends on nothing in them), and
// must not show any of those values of 4 bytes or more.
//
// The values are those of the top-level members named access_token or
// refresh_token, in any letter case. The disguise changes each of their
// printable ASCII characters into another and keeps everything else
// (length, escapes, JSON structure, UTF-8 validity), so that a message
// that does not depend on them comes out the same. A value that is also in
// the disguised data's message is one of the message's own words ("token",
// "file"), not shown by it, unless it holds anything a message never does
// (a character that is not printable ASCII).
func CheckError(t testing.TB, data []byte, err error, errOf func([]byte) error) {
	t.Helper()
	values, disguised := secrets(data)
	errD := errOf(disguised)
	msg, msgD := errString(err), errString(errD)
	if msg != msgD {
		t.Errorf("the error depends on the token values in the data: %q, then %q with them disguised", msg, msgD)
	}
	for _, v := range values {
		if len(v) >= 4 && strings.Contains(msg, v) && (!strings.Contains(msgD, v) || !printableASCII(v)) {
			t.Errorf("the error shows a token value of %d bytes from the data", len(v))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// secrets returns the values of the token members at the top level of
// data, as far as data can be read as JSON, and data with them disguised.
func secrets(data []byte) (values []string, disguised []byte) {
	disguised = bytes.Clone(data)
	for _, m := range members(data) {
		var v string
		isToken := strings.EqualFold(m.name, "access_token") || strings.EqualFold(m.name, "refresh_token")
		if !isToken || len(m.value) == 0 || m.value[0] != '"' || json.Unmarshal(m.value, &v) != nil {
			continue
		}
		values = append(values, v)
		start := m.end - len(m.value)
		if start < 0 || !bytes.Equal(data[start:m.end], m.value) {
			panic(fmt.Sprintf("tokenjsontest: value not at [%d:%d]", start, m.end)) // the span is data's own bytes
		}
		disguise(disguised[start+1 : m.end-1])
	}
	return values, disguised
}

// disguise changes, in place, each printable ASCII character of the JSON
// string content s into another one, keeping its length and validity:
// unescaped characters into the next one but '"' and '\\', the escapes
// \" \\ \/ into one another, and \u escapes of printable ASCII into the
// escape of the next one. Other bytes and escapes are kept.
func disguise(s []byte) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == 'u' && i+5 < len(s):
			if r, err := strconv.ParseUint(string(s[i+2:i+6]), 16, 16); err == nil && r >= 0x20 && r <= 0x7e {
				copy(s[i+2:i+6], fmt.Sprintf("%04x", nextPrintable(byte(r), "")))
			}
			i += 5
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case '"':
				s[i+1] = '\\'
			case '\\':
				s[i+1] = '/'
			case '/':
				s[i+1] = '"'
			}
			i++
		case c >= 0x20 && c <= 0x7e:
			s[i] = nextPrintable(c, `"\`)
		}
	}
}

// nextPrintable returns the printable ASCII character after c, cyclically,
// skipping those in skip.
func nextPrintable(c byte, skip string) byte {
	for {
		if c++; c > 0x7e {
			c = 0x20
		}
		if !strings.ContainsRune(skip, rune(c)) {
			return c
		}
	}
}
