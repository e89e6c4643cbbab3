package tokenwire

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/oauthkit/refresh/internal/extra"
)

var defaults = extra.Default

func TestParseKeepsExtra(t *testing.T) {
	tests := []struct {
		name, ct, body string
		keep           []string
		want           map[string]any
	}{{
		name: "JSON, the defaults",
		ct:   ctJSON,
		body: `{"access_token":"AT","id_token":"eyJ.a.b","scope":"openid email","refresh_expires_in":1800,"session_state":"s"}`,
		keep: defaults,
		want: map[string]any{"id_token": "eyJ.a.b", "scope": "openid email", "refresh_expires_in": 1800.0},
	}, {
		name: "JSON, nothing asked",
		ct:   ctJSON,
		body: `{"access_token":"AT","id_token":"eyJ.a.b"}`,
	}, {
		name: "JSON, a name asked for, scalars of each type",
		ct:   ctJSON,
		body: `{"access_token":"AT","s":"x","n":-1.5e2,"b":false,"z":null,"o":{"a":1},"a":[1]}`,
		keep: []string{"s", "n", "b", "z", "o", "a", "missing", "s"},
		want: map[string]any{"s": "x", "n": -150.0, "b": false},
	}, {
		name: "JSON, everything",
		ct:   ctJSON,
		body: `{"access_token":"AT","refresh_token":"RT","token_type":"Bearer","expires_in":60,"expiry":"x","id_token":"i","x-y":true}`,
		keep: []string{KeepAll},
		want: map[string]any{"id_token": "i", "x-y": true},
	}, {
		name: "JSON, values JSON cannot carry unchanged",
		ct:   ctJSON,
		body: "{\"access_token\":\"AT\",\"id_token\":\"a\xffb\",\"scope\":\"\\ud800\",\"refresh_expires_in\":1e999}",
		keep: defaults,
	}, {
		name: "form, strings",
		ct:   ctForm,
		body: "access_token=AT&id_token=eyJ.a.b&scope=openid+email&refresh_expires_in=1800",
		keep: defaults,
		want: map[string]any{"id_token": "eyJ.a.b", "scope": "openid email", "refresh_expires_in": "1800"},
	}, {
		name: "form, a repeated extra is dropped, not an error",
		ct:   ctForm,
		body: "access_token=AT&id_token=a&id_token=b&scope=s",
		keep: defaults,
		want: map[string]any{"scope": "s"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, eb, err := Parse(200, tt.ct, []byte(tt.body), tt.keep...)
			if err != nil || eb != nil || got == nil {
				t.Fatalf("Parse = %v, %v, %v; want a token", got, eb, err)
			}
			if !reflect.DeepEqual(got.Extra, tt.want) {
				t.Fatalf("Extra = %#v, want %#v", got.Extra, tt.want)
			}
		})
	}
}

// TestParseHostileExtra: a response of many or huge members costs what its
// size costs, keeps the token, and keeps no more than the limits.
func TestParseHostileExtra(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"access_token":"AT","refresh_token":"RT","id_token":"`)
	b.WriteString(strings.Repeat("i", extra.MaxValue+1))
	b.WriteString(`"`)
	for i := range 20000 {
		fmt.Fprintf(&b, `,"m%05d":"%s"`, i, strings.Repeat("v", 30))
	}
	b.WriteString(`,"scope":"openid"}`)
	if b.Len() > MaxBody {
		t.Fatalf("body of %d bytes is larger than MaxBody", b.Len())
	}
	got, _, err := Parse(200, ctJSON, []byte(b.String()), KeepAll)
	if err != nil || got == nil || got.AccessToken != "AT" || got.RefreshToken != "RT" {
		t.Fatalf("Parse = %v, %v; want the token", got, err)
	}
	if len(got.Extra) != extra.MaxMembers {
		t.Fatalf("kept %d members, want %d", len(got.Extra), extra.MaxMembers)
	}
	if _, ok := got.Extra["id_token"]; ok {
		t.Fatalf("kept an id_token longer than extra.MaxValue")
	}
	if got.Extra["scope"] != "openid" {
		t.Fatalf("scope dropped for other members")
	}
}

// checkKeepAll checks, for FuzzParse, that keeping every extra member
// changes nothing else of the token got, and keeps no more than the limits.
func checkKeepAll(t *testing.T, status int, contentType string, body []byte, got *Token) {
	t.Helper()
	all, _, err := Parse(status, contentType, body, KeepAll)
	if err != nil || all == nil {
		t.Fatalf("with KeepAll: %v, %v; want the token", all, err)
	}
	ex := all.Extra
	all.Extra = got.Extra
	if !reflect.DeepEqual(all, got) {
		t.Fatalf("with KeepAll the token differs")
	}
	if !reflect.DeepEqual(extra.Normalize(ex), ex) || len(ex) > extra.MaxMembers {
		t.Fatalf("with KeepAll the extras are not normalized")
	}
}
