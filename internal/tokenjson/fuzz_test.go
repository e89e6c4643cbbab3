package tokenjson_test

import (
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"github.com/oauthkit/refresh/internal/tokenjson/tokenjsontest"
)

// FuzzDecode decodes arbitrary data for a key, and encodes then decodes a
// token made of arbitrary values. Decode must never panic, accept a record
// only for the key it is for and as its members say, and fail with an
// error that neither depends on nor shows the token values; what Encode
// writes must decode back to the token, for its key only.
func FuzzDecode(f *testing.F) {
	for _, r := range tokenjsontest.Records() {
		data, err := tokenjson.Encode(r.Key, r.Tok)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r.Key, r.Key+"x", data, r.Tok.Expiry.Unix(), r.Tok.ExpiresIn)
		f.Add(tokenjson.Stored(r.Key), r.Key, data, int64(0), int64(0))
	}
	for _, c := range strictCases {
		f.Add(c.key, "k", []byte(c.data), int64(-62135596800), int64(1))
	}
	f.Add("k", "k", []byte(`{"version":2}`), int64(253402300800), int64(0)) // expiry in year 10000
	f.Fuzz(func(t *testing.T, key, other string, data []byte, expiry, expiresIn int64) {
		checkDecode(t, key, other, data)
		tok := &oauth2.Token{AccessToken: other, TokenType: key, RefreshToken: string(data), ExpiresIn: expiresIn}
		if expiry != 0 {
			tok.Expiry = time.Unix(expiry, expiresIn%1e9).In(time.FixedZone("x", int(expiresIn%50000)))
		}
		checkRoundTrip(t, key, other, tok)
	})
}

// checkDecode checks Decode(key, data), and that no other key (other, or
// one that JSON stores as key) gets a token from data.
func checkDecode(t *testing.T, key, other string, data []byte) {
	got, err := tokenjson.Decode(key, data)
	if err != nil {
		if got != nil {
			t.Errorf("Decode returned a token with the error %v", err)
		}
		tokenjsontest.CheckError(t, data, err, func(data []byte) error {
			_, err := tokenjson.Decode(key, data)
			return err
		})
		return
	}
	tokenjsontest.CheckAccepted(t, key, data, got)
	for _, k := range []string{other, tokenjson.Stored(key)} {
		if k == key {
			continue
		}
		if _, err := tokenjson.Decode(k, data); err == nil {
			t.Errorf("the record of key %q was accepted for %q too", key, k)
		}
	}
	checkRoundTrip(t, key, other, got)
}

// checkRoundTrip checks that Encode(key, tok) decodes back to tok, for key
// only. JSON replaces bytes that are not UTF-8, so the strings come back as
// tokenjson.Stored says.
func checkRoundTrip(t *testing.T, key, other string, tok *oauth2.Token) {
	data, err := tokenjson.Encode(key, tok)
	if err != nil {
		if y := tok.Expiry.UTC().Year(); y >= 0 && y <= 9999 {
			t.Fatalf("Encode of an expiry in year %d: %v", y, err)
		}
		return
	}
	got, err := tokenjson.Decode(key, data)
	if err != nil {
		t.Fatalf("Decode of what Encode wrote: %v", err)
	}
	want := &oauth2.Token{
		AccessToken:  tokenjson.Stored(tok.AccessToken),
		TokenType:    tokenjson.Stored(tok.TokenType),
		RefreshToken: tokenjson.Stored(tok.RefreshToken),
		Expiry:       tok.Expiry,
		ExpiresIn:    tok.ExpiresIn,
	}
	if !tokenjsontest.Same(got, want) {
		t.Errorf("Decode(Encode(tok)) differs from tok")
	}
	if other != key {
		if _, err := tokenjson.Decode(other, data); err == nil {
			t.Errorf("what Encode wrote for %q was accepted for %q too", key, other)
		}
	}
}
