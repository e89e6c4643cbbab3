package extra

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestRawField pins what Of relies on in x/oauth2: a field named raw that
// holds what WithExtra was given. If an upgrade of x/oauth2 breaks this,
// Of falls back to the Default names only, and this test says so.
func TestRawField(t *testing.T) {
	f := rawField(new(oauth2.Token))
	if !f.IsValid() || f.Kind() != reflect.Interface {
		t.Fatalf("oauth2.Token has no interface field raw any more: Of can only probe the Default names")
	}
	tok := (&oauth2.Token{AccessToken: "a"}).WithExtra(map[string]any{"custom_member": "v"})
	if got := Of(tok); got["custom_member"] != "v" {
		t.Fatalf("Of(token WithExtra custom_member) = %v, want the member", got)
	}
}

func TestOfJSONResponseMap(t *testing.T) {
	// What x/oauth2 makes of a JSON token response: every member, the
	// token's own ones included.
	var raw map[string]any
	body := `{"access_token":"at","token_type":"Bearer","refresh_token":"rt","expires_in":3600,
		"id_token":"eyJ.x.y","scope":"openid email","refresh_expires_in":1800,"not-before-policy":0,
		"session_state":"abc","nested":{"a":1},"list":[1],"nothing":null,"flag":true}`
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	got := Of((&oauth2.Token{AccessToken: "at"}).WithExtra(raw))
	want := map[string]any{
		"id_token": "eyJ.x.y", "scope": "openid email", "refresh_expires_in": 1800.0,
		"not-before-policy": 0.0, "session_state": "abc", "flag": true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Of = %v,\nwant %v", got, want)
	}
}

func TestOfFormValues(t *testing.T) {
	raw := url.Values{"access_token": {"at"}, "id_token": {"i1", "i2"}, "scope": {"a b"}, "empty": {}}
	got := Of((&oauth2.Token{AccessToken: "at"}).WithExtra(raw))
	want := map[string]any{"id_token": "i1", "scope": "a b"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Of = %v, want %v", got, want)
	}
}

func TestOfNothing(t *testing.T) {
	for _, tok := range []*oauth2.Token{
		nil,
		{AccessToken: "a"},
		(&oauth2.Token{}).WithExtra(nil),
		(&oauth2.Token{}).WithExtra(map[string]any{}),
		(&oauth2.Token{}).WithExtra(struct{ IDToken string }{"x"}),
		(&oauth2.Token{}).WithExtra(map[string]string{"id_token": "x"}), // Extra returns nil for it too
		(&oauth2.Token{}).WithExtra(map[string]any{"access_token": "a", "refresh_token": "r", "expiry": "x"}),
	} {
		if got := Of(tok); got != nil {
			t.Errorf("Of = %v, want nil", got)
		}
	}
}

func TestNormalizeTypes(t *testing.T) {
	in := map[string]any{
		"s": "x", "f": 1.5, "f32": float32(2), "i": 7, "i64": int64(-3), "u": uint8(4), "b": false,
		"n": json.Number("12.5"), "badnum": json.Number("1e999"), "inf": math.Inf(1), "nan": math.NaN(),
		"bad-utf8": "a\xffb", "fffd": "a\ufffdb", "obj": map[string]any{}, "slice": []string{"x"},
		"nil": nil, "ptr": new(string), "": "empty name", "\xff": "bad name",
		strings.Repeat("n", MaxName+1): "long name", "big": strings.Repeat("v", MaxValue+1),
		"atmax": strings.Repeat("v", MaxValue),
	}
	want := map[string]any{
		"s": "x", "f": 1.5, "f32": 2.0, "i": 7.0, "i64": -3.0, "u": 4.0, "b": false, "n": 12.5,
		"atmax": strings.Repeat("v", MaxValue),
	}
	if got := Normalize(in); !reflect.DeepEqual(got, want) {
		t.Fatalf("Normalize = %v, want %v", keys(got), keys(want))
	}
}

func TestNormalizeCapsKeepDefaultsFirst(t *testing.T) {
	in := map[string]any{"id_token": strings.Repeat("i", MaxValue), "scope": "openid", "refresh_expires_in": 60}
	for i := range 3 * MaxMembers {
		in[fmt.Sprintf("m%03d", i)] = strings.Repeat("x", 1000)
	}
	for range 5 {
		got := Normalize(in)
		if len(got) != MaxMembers {
			t.Fatalf("kept %d members, want %d", len(got), MaxMembers)
		}
		for _, name := range Default {
			if _, ok := got[name]; !ok {
				t.Fatalf("%s was dropped for another member", name)
			}
		}
		// The members after the defaults are the first by name.
		for i := range MaxMembers - len(Default) {
			if _, ok := got[fmt.Sprintf("m%03d", i)]; !ok {
				t.Fatalf("m%03d dropped; the order is not by name", i)
			}
		}
	}
	// The total: two values of MaxValue fill it.
	in = map[string]any{"a": strings.Repeat("a", MaxValue), "b": strings.Repeat("b", MaxValue), "c": "c", "d": 1}
	got := Normalize(in)
	if _, ok := got["b"]; ok || got["a"] == nil || got["c"] != "c" || got["d"] != 1.0 {
		t.Fatalf("Normalize kept %v, want a, c and d: b does not fit in MaxTotal", keys(got))
	}
}

func TestNumber(t *testing.T) {
	for s, want := range map[string]bool{
		"0": true, "-1.5e3": true, "1e-400": true, "1e400": false, "NaN": false, "+1": false,
		" 1": false, "1 ": false, "0x10": false, "": false, "-": false, "01": false,
	} {
		if _, ok := Number(s); ok != want {
			t.Errorf("Number(%q) ok = %v, want %v", s, ok, want)
		}
	}
}

func TestWithCopyDoesNotAlias(t *testing.T) {
	m := map[string]any{"id_token": "x"}
	tok := (&oauth2.Token{AccessToken: "a"}).WithExtra(m)
	c := Copy(tok)
	m["id_token"] = "changed"
	if c.Extra("id_token") != "x" {
		t.Fatalf("a change to the map given to WithExtra reached the copy")
	}
	if With(&oauth2.Token{AccessToken: "a"}, nil).Extra("id_token") != nil {
		t.Fatalf("With(nil) has extras")
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		if len(k) > 20 {
			k = k[:20] + "…"
		}
		ks = append(ks, k)
	}
	return ks
}
