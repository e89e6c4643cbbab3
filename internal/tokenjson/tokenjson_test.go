package tokenjson_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"golang.org/x/oauth2"
)

func TestRoundTrip(t *testing.T) {
	exp := time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.FixedZone("x", 3600))
	cases := []struct {
		name string
		key  string
		tok  *oauth2.Token
		want string
	}{
		{
			name: "full",
			key:  "alice",
			tok:  &oauth2.Token{AccessToken: "a", TokenType: "Bearer", RefreshToken: "r", Expiry: exp, ExpiresIn: 3600},
			want: `{"version":1,"key":"alice","access_token":"a","token_type":"Bearer","refresh_token":"r","expiry":"2031-05-06T06:08:09.123456789Z","expires_in":3600}`,
		},
		{
			name: "zero expiry",
			key:  "k",
			tok:  &oauth2.Token{AccessToken: "a"},
			want: `{"version":1,"key":"k","access_token":"a","token_type":"","refresh_token":"","expires_in":0}`,
		},
		{
			name: "key not UTF-8",
			key:  "\xffk",
			tok:  &oauth2.Token{AccessToken: "a"},
			want: `{"version":1,"key":"\ufffdk","key_base64":"/2s=","access_token":"a","token_type":"","refresh_token":"","expires_in":0}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data, err := tokenjson.Encode(c.key, c.tok)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if string(data) != c.want {
				t.Errorf("Encode:\n got %s\nwant %s", data, c.want)
			}
			got, err := tokenjson.Decode(c.key, data)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.AccessToken != c.tok.AccessToken || got.TokenType != c.tok.TokenType ||
				got.RefreshToken != c.tok.RefreshToken || got.ExpiresIn != c.tok.ExpiresIn ||
				!got.Expiry.Equal(c.tok.Expiry) {
				t.Errorf("Decode: got %+v, want %+v", got, c.tok)
			}
			if !c.tok.Expiry.IsZero() && got.Expiry.Location() != time.UTC {
				t.Errorf("Decode: expiry location %v, want UTC", got.Expiry.Location())
			}
		})
	}
}

func TestEncodeDropsExtra(t *testing.T) {
	tok := (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"id_token": "not kept"})
	data, err := tokenjson.Encode("k", tok)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "id_token") {
		t.Errorf("Encode kept an extra field: %s", data)
	}
}

func TestEncodeExpiryOutOfRange(t *testing.T) {
	for _, y := range []int{-1, 10000} {
		tok := &oauth2.Token{AccessToken: "SECRET", Expiry: time.Date(y, 6, 1, 0, 0, 0, 0, time.UTC)}
		data, err := tokenjson.Encode("k", tok)
		if err == nil {
			t.Errorf("Encode with expiry year %d: got %s, want an error", y, data)
			continue
		}
		if !strings.Contains(err.Error(), "out of range") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Encode with expiry year %d: got error %q", y, err)
		}
	}
	// The year is checked in UTC, as the expiry is written.
	edge := &oauth2.Token{AccessToken: "a", Expiry: time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("x", -2*3600))}
	if _, err := tokenjson.Encode("k", edge); err == nil {
		t.Error("Encode with an expiry in year 10000 UTC: got nil error")
	}
}

// TestDecodeErrors: data that is not a token of this format for the key is
// refused, and the error says why without quoting the data.
func TestDecodeErrors(t *testing.T) {
	valid := `{"version":1,"key":"k","access_token":"SECRET-a","token_type":"Bearer","refresh_token":"SECRET-r","expires_in":0}`
	other, err := tokenjson.Encode("other", &oauth2.Token{AccessToken: "SECRET-a"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "JSON ends early"},
		{"truncated", valid[:len(valid)/2], "JSON ends early"},
		{"truncated in token", `{"version":1,"key":"k","access_token":"SECRET-a`, "JSON ends early"},
		{"not JSON", "SECRET-a SECRET-r", "invalid JSON at byte 1"},
		{"garbage after", valid + "SECRET", "invalid JSON at byte"},
		{"array", `["SECRET-a"]`, "not a JSON object"},
		{"string", `"SECRET-a"`, "not a JSON object"},
		{"null", `null`, `no "version" field`},
		{"access_token number", `{"version":1,"key":"k","access_token":12345,"refresh_token":"SECRET-r"}`, `field "access_token" has the wrong JSON type`},
		{"refresh_token object", `{"version":1,"key":"k","access_token":"SECRET-a","refresh_token":{"v":"SECRET-r"}}`, `field "refresh_token" has the wrong JSON type`},
		{"expires_in string", `{"version":1,"key":"k","access_token":"SECRET-a","expires_in":"SECRET"}`, `field "expires_in" has the wrong JSON type`},
		{"version string", `{"version":"1","key":"k","access_token":"SECRET-a"}`, `field "version" has the wrong JSON type`},
		{"no version", `{"key":"k","access_token":"SECRET-a"}`, `no "version" field`},
		{"newer version", `{"version":2,"key":"k","access_token":"SECRET-a"}`, "unsupported format version 2"},
		{"newer version, other shape", `{"version":2,"key":"k","access_token":["SECRET-a"]}`, "unsupported format version 2"},
		{"no key", `{"version":1,"access_token":"SECRET-a"}`, `no "key" field`},
		{"no access_token", `{"version":1,"key":"k","refresh_token":"SECRET-r"}`, `no "access_token" field`},
		{"bad expiry", `{"version":1,"key":"k","access_token":"SECRET-a","expiry":"SECRET"}`, `field "expiry" is not an RFC 3339 time`},
		{"bad key_base64", `{"version":1,"key":"k","key_base64":"SECRET!","access_token":"SECRET-a"}`, `field "key_base64" is not valid base64`},
		{"key_base64 of another key", `{"version":1,"key":"k","key_base64":"/2s=","access_token":"SECRET-a"}`, "another key"},
		{"another key's", string(other), "another key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := tokenjson.Decode("k", []byte(c.data))
			if err == nil {
				t.Fatalf("got %+v, want an error", tok)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("got error %q, want one containing %q", msg, c.want)
			}
			if strings.Contains(msg, "SECRET") || strings.Contains(msg, "12345") {
				t.Errorf("error quotes the data: %q", msg)
			}
		})
	}
}

// strictCases are records that Decode refuses for key because Encode
// could not have written them, and what the error says. headOfK begins a
// record of key "k".
const headOfK = `{"version":1,"key":"k",`

var strictCases = []struct {
	name, key, data, want string
}{
	{"duplicate access_token", "k", headOfK + `"access_token":"SECRET-a","access_token":"SECRET-b"}`, `member "access_token" appears twice`},
	{"duplicate key", "k", `{"version":1,"key":"other","key":"k","access_token":"SECRET-a"}`, `member "key" appears twice`},
	{"duplicate version", "k", `{"version":1,"version":1,"key":"k","access_token":"SECRET-a"}`, `member "version" appears twice`},
	{"duplicate refresh_token", "k", headOfK + `"access_token":"SECRET-a","refresh_token":"SECRET-r","refresh_token":"SECRET-s"}`, `member "refresh_token" appears twice`},
	{"name in upper case", "k", headOfK + `"ACCESS_TOKEN":"SECRET-a"}`, `member 3 is named "access_token" in another letter case`},
	{"name in mixed case", "k", `{"Version":1,"key":"k","access_token":"SECRET-a"}`, `member 1 is named "version" in another letter case`},
	{"name with a Kelvin sign", "k", `{"version":1,"\u212aey":"k","access_token":"SECRET-a"}`, `member 2 is named "key" in another letter case`},
	{"case variant beside the name", "k", headOfK + `"access_token":"SECRET-a","Access_Token":"SECRET-b"}`, `member 4 is named "access_token" in another letter case`},
	{"unknown member", "k", headOfK + `"access_token":"SECRET-a","scope":"x"}`, "member 4 has an unknown name"},
	{"unknown member named by a token", "k", headOfK + `"access_token":"a","SECRET-a":"x"}`, "member 4 has an unknown name"},
	{"nested duplicate", "k", headOfK + `"access_token":"SECRET-a","x":{"a":1,"a":2}}`, "member 4 has an unknown name"},
	{"null token_type", "k", headOfK + `"access_token":"SECRET-a","token_type":null}`, `field "token_type" has the wrong JSON type`},
	{"null with white space", "k", headOfK + "\"access_token\":\"SECRET-a\",\"token_type\": \n null \n}", `field "token_type" has the wrong JSON type`},
	{"null key", "k", `{"version":1,"key":null,"access_token":"SECRET-a"}`, `field "key" has the wrong JSON type`},
	{"null expiry", "k", headOfK + `"access_token":"SECRET-a","expiry":null}`, `field "expiry" has the wrong JSON type`},
	{"empty expiry", "k", headOfK + `"access_token":"SECRET-a","expiry":""}`, `field "expiry" is not an RFC 3339 time`},
	{"zero expiry", "k", headOfK + `"access_token":"SECRET-a","expiry":"0001-01-01T00:00:00Z"}`, `field "expiry" holds the zero time`},
	{"raw bytes not UTF-8", "k", headOfK + `"access_token":"SECRET-a` + "\xff" + `"}`, "not valid UTF-8"},
	{"key_base64 overrides a valid key", "k", `{"version":1,"key":"other","key_base64":"aw==","access_token":"SECRET-a"}`, `"key_base64" holds a valid UTF-8 key`},
	{"key_base64 of a valid key", "k", `{"version":1,"key":"k","key_base64":"aw==","access_token":"SECRET-a"}`, `"key_base64" holds a valid UTF-8 key`},
	{"empty key_base64", "", `{"version":1,"key":"","key_base64":"","access_token":"SECRET-a"}`, `"key_base64" holds a valid UTF-8 key`},
	{"key_base64 disagrees with key", "\xffk", `{"version":1,"key":"k","key_base64":"/2s=","access_token":"SECRET-a"}`, `fields "key" and "key_base64" disagree`},
	{"key with one U+FFFD for two bytes", "\xff\xfe", `{"version":1,"key":"\ufffd","key_base64":"//4=","access_token":"SECRET-a"}`, `fields "key" and "key_base64" disagree`},
	{"key_base64 with a line break", "\xffk", `{"version":1,"key":"\ufffdk","key_base64":"/2\ns=","access_token":"SECRET-a"}`, `field "key_base64" is not valid base64`},
	{"key_base64 with non-zero padding bits", "\xffk", `{"version":1,"key":"\ufffdk","key_base64":"/2t=","access_token":"SECRET-a"}`, `field "key_base64" is not valid base64`},
	{"key_base64 without padding", "\xffk", `{"version":1,"key":"\ufffdk","key_base64":"/2s","access_token":"SECRET-a"}`, `field "key_base64" is not valid base64`},
}

// TestDecodeStrict: Decode accepts only what Encode writes, give or take
// white space, member order and JSON escapes: every member name as Encode
// spells it, none twice, none unknown, and key_base64 only where Encode
// writes it. Anything else did not come from Encode and is refused, without
// quoting the data.
func TestDecodeStrict(t *testing.T) {
	for _, c := range strictCases {
		t.Run(c.name, func(t *testing.T) {
			tok, err := tokenjson.Decode(c.key, []byte(c.data))
			if err == nil {
				t.Fatalf("got a token (access token of %d bytes), want an error", len(tok.AccessToken))
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("got error %q, want one containing %q", msg, c.want)
			}
			if strings.Contains(msg, "SECRET") {
				t.Errorf("error quotes the data: %q", msg)
			}
		})
	}
}

// TestDecodeNewerVersionFirst: a record of another format version is
// reported as such, whatever else differs in it, so that an older program
// says why it cannot read a newer one.
func TestDecodeNewerVersionFirst(t *testing.T) {
	for _, data := range []string{
		`{"version":2,"key":"k","access_token":"SECRET-a","scope":"x"}`,
		`{"scope":"x","Key":"k","version":2}`,
		`{"version":2,"access_token":"SECRET-a","access_token":"SECRET-b"}`,
		`{"version":2,"key":null}`,
	} {
		_, err := tokenjson.Decode("k", []byte(data))
		if err == nil || err.Error() != "unsupported format version 2" {
			t.Errorf("Decode(%s): got %v, want unsupported format version 2", data, err)
		}
	}
}

// TestDecodeAcceptsWhatEncodeMeans: white space, member order and escapes
// do not change a record, and are accepted.
func TestDecodeAcceptsWhatEncodeMeans(t *testing.T) {
	for _, data := range []string{
		`{"access_token":"a","key":"k","version":1}`,
		"{\n  \"version\": 1,\n  \"key\": \"k\",\n  \"access_token\": \"a\"\n}\n",
		`{"version":1,"\u006bey":"\u006b","access_token":"\u0061"}`,
	} {
		tok, err := tokenjson.Decode("k", []byte(data))
		if err != nil || tok.AccessToken != "a" {
			t.Errorf("Decode(%s): got %+v, %v", data, tok, err)
		}
	}
}

// TestEncodeIsCompact: Encode writes compact JSON, which callers may indent.
func TestEncodeIsCompact(t *testing.T) {
	data, err := tokenjson.Encode("k", &oauth2.Token{AccessToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(data) || strings.ContainsAny(string(data), " \n\t") {
		t.Errorf("Encode: got %q, want compact JSON", data)
	}
}
