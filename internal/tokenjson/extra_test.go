package tokenjson_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"github.com/oauthkit/refresh/internal/tokenjson/tokenjsontest"
)

var richExtra = map[string]any{
	"id_token": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", "scope": "openid email",
	"refresh_expires_in": 1800.0, "flag": true, "odd": "ü\"\\\n\u2028",
}

func withExtra(tok *oauth2.Token) *oauth2.Token { return tok.WithExtra(richExtra) }

// TestPreviousReleaseReadsNewRecords: what this release writes for a token
// with extras, the release before reads (the frozen copy of its decoder),
// as the same token: the token record did not change, and the extras are
// in a record of their own, which that release never reads.
func TestPreviousReleaseReadsNewRecords(t *testing.T) {
	for _, r := range tokenjsontest.Records() {
		data, err := tokenjson.Encode(r.Key, withExtra(r.Tok))
		if err != nil {
			t.Fatal(err)
		}
		old, err := v1Decode(r.Key, data)
		if err != nil {
			t.Fatalf("key %q: the previous release refuses the new record: %v", r.Key, err)
		}
		cur, err := tokenjson.Decode(r.Key, data)
		if err != nil {
			t.Fatal(err)
		}
		if !tokenjsontest.Same(old, cur) {
			t.Errorf("key %q: the previous release reads another token than this one", r.Key)
		}
	}
}

// TestPreviousReleaseRefusesAnExtraMember pins why the extras are not a
// member of the token record: the previous release refuses any record with
// a member it does not know, so a rolling deploy or a rollback would make
// every token it reads corrupt.
func TestPreviousReleaseRefusesAnExtraMember(t *testing.T) {
	data, err := tokenjson.Encode("alice", &oauth2.Token{AccessToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	data = append(data[:len(data)-1], []byte(`,"extra":{"scope":"openid"}}`)...)
	if _, err := v1Decode("alice", data); err == nil {
		t.Fatalf("the previous release accepts a record with an extra member; the extras could live in the token record")
	}
}

// TestNewReleaseReadsPreviousRecords: the previous release's records (its
// Encode, no extras record) read as the same token, without extras.
func TestNewReleaseReadsPreviousRecords(t *testing.T) {
	for _, r := range tokenjsontest.Records() {
		data, err := v1Encode(r.Key, r.Tok)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenjson.Decode(r.Key, data)
		if err != nil {
			t.Fatalf("key %q: the previous release's record is refused: %v", r.Key, err)
		}
		if tok, err = tokenjson.DecodeExtra(r.Key, tok, nil); err != nil || tok.Extra("scope") != nil {
			t.Fatalf("key %q: no extras record: got %v, extras %v", r.Key, err, tok.Extra("scope"))
		}
		want, _ := v1Decode(r.Key, data)
		if !tokenjsontest.Same(tok, want) {
			t.Errorf("key %q: read another token than the previous release does", r.Key)
		}
	}
}

func TestExtraRoundTrip(t *testing.T) {
	tok := withExtra(&oauth2.Token{AccessToken: "at", RefreshToken: "rt", Expiry: time.Unix(1, 0).UTC()})
	rec, err := tokenjson.EncodeExtra("alice", tok, nil)
	if err != nil || rec == nil {
		t.Fatalf("EncodeExtra: %v, %v", rec, err)
	}
	got, err := tokenjson.DecodeExtra("alice", &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}, rec)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range richExtra {
		if got.Extra(name) != want {
			t.Errorf("Extra(%q) = %v, want %v", name, got.Extra(name), want)
		}
	}
	// Another key's or another token's record gives no extras.
	for _, c := range []struct {
		key string
		tok *oauth2.Token
	}{{"bob", &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}}, {"alice", &oauth2.Token{AccessToken: "at2", RefreshToken: "rt"}}} {
		got, err := tokenjson.DecodeExtra(c.key, c.tok, rec)
		if err != nil || got.Extra("scope") != nil {
			t.Errorf("key %q, token %q: got %v, extras %v; want none", c.key, c.tok.AccessToken, err, got.Extra("scope"))
		}
	}
	if rec, err := tokenjson.EncodeExtra("alice", &oauth2.Token{AccessToken: "at"}, nil); rec != nil || err != nil {
		t.Errorf("EncodeExtra of a token without extras: %q, %v; want nil, nil", rec, err)
	}
}

// TestExtraKeepsPreviousEntry: a record written over another keeps the
// previous token's entry after the new one, and only that one.
func TestExtraKeepsPreviousEntry(t *testing.T) {
	t1 := (&oauth2.Token{AccessToken: "a1"}).WithExtra(map[string]any{"scope": "one"})
	t2 := (&oauth2.Token{AccessToken: "a2"}).WithExtra(map[string]any{"scope": "two"})
	t3 := (&oauth2.Token{AccessToken: "a3"}).WithExtra(map[string]any{"scope": "three"})
	r1, _ := tokenjson.EncodeExtra("k", t1, nil)
	r2, _ := tokenjson.EncodeExtra("k", t2, r1)
	r3, _ := tokenjson.EncodeExtra("k", t3, r2)
	for _, c := range []struct {
		rec  []byte
		tok  *oauth2.Token
		want any
	}{{r2, t1, "one"}, {r2, t2, "two"}, {r3, t2, "two"}, {r3, t3, "three"}, {r3, t1, nil}} {
		got, err := tokenjson.DecodeExtra("k", &oauth2.Token{AccessToken: c.tok.AccessToken}, c.rec)
		if err != nil || got.Extra("scope") != c.want {
			t.Errorf("token %s: scope %v, %v; want %v", c.tok.AccessToken, got.Extra("scope"), err, c.want)
		}
	}
	// The same token saved again replaces its entry, and the one before
	// it is no longer the previous token's.
	again, _ := tokenjson.EncodeExtra("k", (&oauth2.Token{AccessToken: "a3"}).WithExtra(map[string]any{"scope": "new"}), r3)
	var rec struct{ Tokens []json.RawMessage }
	json.Unmarshal(again, &rec)
	if len(rec.Tokens) != 1 {
		t.Errorf("record of a token saved again has %d entries, want 1", len(rec.Tokens))
	}
}

// TestDecodeExtraTolerance: unknown members and values are ignored, a
// record of another version is ignored whole, and what is not a record is
// an error that quotes nothing.
func TestDecodeExtraTolerance(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "at"}
	fp := tokenjson.ExtraFingerprint("k", tok)
	for _, c := range []struct {
		data    string
		scope   any
		wantErr bool
	}{
		{`{"version":1,"future":[1],"tokens":[{"for":"` + fp + `","extra":{"scope":"s","o":{},"n":1e999,"z":null},"more":1}]}`, "s", false},
		{`{"version":2,"tokens":"anything"}`, nil, false},
		{``, nil, false},
		{`{"version":1}`, nil, false},
		{`{"tokens":[]}`, nil, true},
		{`{"version":1,"tokens":{"for":"SECRET-VALUE-123"}}`, nil, true},
		{`{"version":1,"tokens":[{"for":"` + fp + `","extra":"SECRET-VALUE-123"}]}`, nil, true},
		{`{"version":1,"tokens":[{"for":"SECRET-VALUE-123"`, nil, true},
		{`["SECRET-VALUE-123"]`, nil, true},
		{`null`, nil, true},
	} {
		got, err := tokenjson.DecodeExtra("k", tok, []byte(c.data))
		switch {
		case (err != nil) != c.wantErr:
			t.Errorf("%.40s: error %v, want error %v", c.data, err, c.wantErr)
		case err != nil && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("%.40s: error %q quotes the data", c.data, err)
		case err == nil && got.Extra("scope") != c.scope:
			t.Errorf("%.40s: scope %v, want %v", c.data, got.Extra("scope"), c.scope)
		}
	}
}

// FuzzDecodeExtra: whatever the extras record holds, DecodeExtra does not
// panic, returns the token it was given but for extras, and its error
// quotes nothing of the data.
func FuzzDecodeExtra(f *testing.F) {
	tok := &oauth2.Token{AccessToken: "at", RefreshToken: "rt"}
	rec, _ := tokenjson.EncodeExtra("k", withExtra(tok), nil)
	f.Add(rec)
	f.Add([]byte(`{"version":1,"tokens":[{"for":"x","extra":{"a":[1,{"b":2}]}}]}`))
	f.Add([]byte(strings.Repeat("[", 10000)))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := tokenjson.DecodeExtra("k", tok, data)
		if err != nil {
			for _, w := range bytes.FieldsFunc(data, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') }) {
				if len(w) >= 12 && strings.Contains(err.Error(), string(w)) {
					t.Fatalf("error %q quotes %q", err, w)
				}
			}
			return
		}
		if got.AccessToken != "at" || got.RefreshToken != "rt" {
			t.Fatalf("DecodeExtra changed the token")
		}
		if again, _ := tokenjson.EncodeExtra("k", got, nil); again != nil {
			back, err := tokenjson.DecodeExtra("k", tok, again)
			if err != nil || !reflect.DeepEqual(extras(back), extras(got)) {
				t.Fatalf("the extras DecodeExtra returned do not survive EncodeExtra")
			}
		}
	})
}

func extras(t *oauth2.Token) map[string]any {
	m := map[string]any{}
	for _, n := range []string{"id_token", "scope", "refresh_expires_in", "flag", "odd", "a"} {
		if v := t.Extra(n); v != nil {
			m[n] = v
		}
	}
	return m
}
