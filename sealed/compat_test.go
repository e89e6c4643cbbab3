package sealed

// The payload and the seal and open functions below are frozen copies of
// sealed/format.go as the release before token extras had them (git show
// main:sealed/format.go when the extras were added), renamed with a v1
// prefix and nothing else changed: what a process of that release, during
// a rolling deploy or after a rollback, seals and opens with. Never edit
// them to make a test pass.

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

type v1Payload struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Expiry       string `json:"expiry,omitempty"` // RFC 3339 with nanoseconds, UTC; "" means none
	ExpiresIn    int64  `json:"expires_in,omitempty"`
}

func v1Seal(aead cipher.AEAD, keyID, storeKey string, tok *oauth2.Token) (*oauth2.Token, error) {
	p := v1Payload{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		ExpiresIn:    tok.ExpiresIn,
	}
	if !tok.Expiry.IsZero() {
		// RFC 3339 has four-digit years; a time outside them would
		// seal fine and never open again.
		if y := tok.Expiry.UTC().Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("sealed: key %q: token expiry year %d is out of range", storeKey, y)
		}
		p.Expiry = tok.Expiry.UTC().Format(time.RFC3339Nano)
	}
	plain, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("sealed: key %q: encoding token: %w", storeKey, err)
	}
	buf := make([]byte, nonceSize, nonceSize+len(plain)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("sealed: reading a random nonce: %w", err)
	}
	buf = aead.Seal(buf, buf[:nonceSize], plain, additionalData(keyID, storeKey))
	clear(plain)
	return &oauth2.Token{AccessToken: prefix + keyID + ":" + encoding.EncodeToString(buf)}, nil
}

func v1Open(aead cipher.AEAD, keyID, storeKey, data string) (*oauth2.Token, error) {
	// Decoders skip CR and LF; refuse them so that a value has one spelling.
	sealed, err := encoding.DecodeString(data)
	if err != nil || strings.ContainsAny(data, "\r\n") || len(sealed) < nonceSize+aead.Overhead() {
		return nil, &openError{
			msg: fmt.Sprintf("sealed: key %q: token sealed with key id %q is corrupt", storeKey, keyID),
			err: ErrAuthentication,
		}
	}
	plain, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], additionalData(keyID, storeKey))
	if err != nil {
		return nil, &openError{
			msg: fmt.Sprintf("sealed: key %q: token sealed with key id %q failed authentication (wrong secret, altered, or copied from another key)", storeKey, keyID),
			err: ErrAuthentication,
		}
	}
	defer clear(plain)
	// The plaintext is authentic, so a failure here is a bug, not an
	// attack. The decoder's message could quote the plaintext: drop it.
	var p v1Payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("sealed: key %q: token sealed with key id %q has malformed contents", storeKey, keyID)
	}
	tok := &oauth2.Token{
		AccessToken:  p.AccessToken,
		TokenType:    p.TokenType,
		RefreshToken: p.RefreshToken,
		ExpiresIn:    p.ExpiresIn,
	}
	if p.Expiry != "" {
		if tok.Expiry, err = time.Parse(time.RFC3339Nano, p.Expiry); err != nil {
			return nil, fmt.Errorf("sealed: key %q: token sealed with key id %q has a malformed expiry", storeKey, keyID)
		}
	}
	return tok, nil
}

func compatAEAD(t *testing.T) cipher.AEAD {
	t.Helper()
	secret := make([]byte, secretLen)
	rand.Read(secret)
	aead, err := newAEAD(Key{ID: "k1", Secret: secret}, "test key")
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// TestPreviousReleaseOpensNewPayloads: a token with extras, sealed by this
// release, opens in the previous one as the same token (without extras).
func TestPreviousReleaseOpensNewPayloads(t *testing.T) {
	aead := compatAEAD(t)
	tok := (&oauth2.Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt", ExpiresIn: 60,
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}).WithExtra(map[string]any{"id_token": "i", "scope": "s", "n": 1.5})
	sealed, err := seal(aead, "k1", "alice", tok)
	if err != nil {
		t.Fatal(err)
	}
	keyID, data, ok := parse(sealed)
	if !ok {
		t.Fatal("not in sealed form")
	}
	old, err := v1Open(aead, keyID, "alice", data)
	if err != nil {
		t.Fatalf("the previous release cannot open a new payload: %v", err)
	}
	if old.AccessToken != "at" || old.RefreshToken != "rt" || old.TokenType != "Bearer" || old.ExpiresIn != 60 || !old.Expiry.Equal(tok.Expiry) {
		t.Errorf("the previous release opens another token")
	}
	cur, err := open(aead, keyID, "alice", data)
	if err != nil || cur.Extra("id_token") != "i" || cur.Extra("scope") != "s" || cur.Extra("n") != 1.5 {
		t.Errorf("this release does not open the extras it sealed: %v", err)
	}
}

// TestNewReleaseOpensPreviousPayloads: what the previous release sealed
// opens as the same token, without extras.
func TestNewReleaseOpensPreviousPayloads(t *testing.T) {
	aead := compatAEAD(t)
	tok := &oauth2.Token{AccessToken: "at", TokenType: "Bearer", RefreshToken: "rt", ExpiresIn: 60,
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)}
	sealed, err := v1Seal(aead, "k1", "alice", tok.WithExtra(map[string]any{"id_token": "i"}))
	if err != nil {
		t.Fatal(err)
	}
	keyID, data, _ := parse(sealed)
	got, err := open(aead, keyID, "alice", data)
	if err != nil {
		t.Fatalf("a payload of the previous release does not open: %v", err)
	}
	if got.AccessToken != "at" || got.RefreshToken != "rt" || !got.Expiry.Equal(tok.Expiry) || got.Extra("id_token") != nil {
		t.Errorf("a payload of the previous release opens as another token")
	}
}
