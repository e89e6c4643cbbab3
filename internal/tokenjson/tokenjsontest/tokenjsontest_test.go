package tokenjsontest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestDisguise: the disguise changes every printable ASCII character of
// the token values, whether written as is or escaped, and nothing else.
func TestDisguise(t *testing.T) {
	data := []byte(`{"version":1,"Access_Token":"ab Z~\"\\\/\u0041\u00e9\n\u2028é` + "\xff" + `","refresh_token":"SECRET","key":"SECRET","x":{"access_token":"SECRET"},"refresh_token":null}`)
	values, disguised := secrets(data)
	if len(values) != 2 || values[1] != "SECRET" {
		t.Fatalf("got %d values %q, want the two token values", len(values), values)
	}
	if len(disguised) != len(data) {
		t.Fatalf("the disguise changed the length from %d to %d", len(data), len(disguised))
	}
	if !json.Valid(disguised) {
		t.Fatalf("the disguise made invalid JSON: %s", disguised)
	}
	want := strings.Replace(string(data), `"ab Z~\"\\\/\u0041\u00e9\n\u2028é`, `"bc![ \\\/\"\u0042\u00e9\n\u2028é`, 1)
	want = strings.Replace(want, `"refresh_token":"SECRET"`, `"refresh_token":"TFDSFU"`, 1)
	if string(disguised) != want {
		t.Errorf("disguised:\n got %s\nwant %s", disguised, want)
	}
}

// TestCheckError: CheckError fails a decoder whose error shows a token
// value or depends on it, and passes one whose message only shares words
// with the values.
func TestCheckError(t *testing.T) {
	data := []byte(`{"version":1,"key":"k","access_token":"token file","refresh_token":"日本語です"}`)
	cases := []struct {
		name  string
		errOf func([]byte) error
		fails bool
	}{
		{"fixed message", func([]byte) error { return errors.New("corrupt token file: no expiry") }, false},
		{"shows a value", func(d []byte) error {
			values, _ := secrets(d)
			return fmt.Errorf("bad token %q", values[0])
		}, true},
		{"shows a value that is not ASCII", func(d []byte) error {
			return errors.New("bad token 日本語です")
		}, true},
		{"depends on a value", func(d []byte) error {
			values, _ := secrets(d)
			return fmt.Errorf("token of %d spaces", strings.Count(values[0], " "))
		}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			CheckError(rec, data, c.errOf(data), c.errOf)
			if rec.failed != c.fails {
				t.Errorf("CheckError failed: %v, want %v (%q)", rec.failed, c.fails, rec.msgs)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
