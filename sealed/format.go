package sealed

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/extra"
)

// The sealed representation, version 1. Changing any of these makes every
// stored token unreadable: a new format gets a new prefix and a new
// additional-data label, and open keeps accepting the old ones.
const (
	prefix    = "sealed1:"              // "sealed1:" + key ID + ":" + base64url(nonce || ciphertext)
	aadLabel  = "refresh/sealed/v1\x00" // start of the GCM additional data
	nonceSize = 12                      // GCM's standard nonce, random per seal
)

// encoding is base64url without padding (RFC 4648 §5). Strict rejects
// non-zero padding bits, so that each sealed value has one spelling.
var encoding = base64.RawURLEncoding.Strict()

// payload is the plaintext that gets sealed: the fields of an oauth2.Token
// that a store keeps, and its extras (oauth2.Token.Extra, as internal/extra
// keeps them). The extras came after version 1 and are a member of the
// same payload: the releases before read it with json.Unmarshal, which
// skips a member it does not know, so they open the new payloads (without
// the extras), and this release opens theirs (without extras).
type payload struct {
	AccessToken  string                     `json:"access_token"`
	TokenType    string                     `json:"token_type,omitempty"`
	RefreshToken string                     `json:"refresh_token,omitempty"`
	Expiry       string                     `json:"expiry,omitempty"` // RFC 3339 with nanoseconds, UTC; "" means none
	ExpiresIn    int64                      `json:"expires_in,omitempty"`
	Extra        map[string]json.RawMessage `json:"extra,omitempty"`
}

// additionalData binds a sealed value to the format version, the key ID
// that sealed it and the store key it is stored under, so that a value
// copied to another store key does not open. Neither the label nor an ID
// contains NUL, so the concatenation is unambiguous.
func additionalData(keyID, storeKey string) []byte {
	return []byte(aadLabel + keyID + "\x00" + storeKey)
}

// seal returns the token that stands for tok in the backend: the
// ciphertext in AccessToken, every other field zero.
func seal(aead cipher.AEAD, keyID, storeKey string, tok *oauth2.Token) (*oauth2.Token, error) {
	p := payload{
		AccessToken:  tok.AccessToken,
		TokenType:    tok.TokenType,
		RefreshToken: tok.RefreshToken,
		ExpiresIn:    tok.ExpiresIn,
		Extra:        rawExtra(tok),
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

// rawExtra returns tok's extras as the payload holds them, nil if none.
func rawExtra(tok *oauth2.Token) map[string]json.RawMessage {
	m := extra.Of(tok)
	if len(m) == 0 {
		return nil
	}
	raw := make(map[string]json.RawMessage, len(m))
	for name, v := range m {
		raw[name], _ = json.Marshal(v) // cannot fail: scalars only
	}
	return raw
}

// parse splits a stored token into the ID of the key that sealed it and the
// sealed bytes. ok is false if raw is not in sealed form at all.
func parse(raw *oauth2.Token) (keyID, data string, ok bool) {
	rest, ok := strings.CutPrefix(raw.AccessToken, prefix)
	if !ok {
		return "", "", false
	}
	keyID, data, ok = strings.Cut(rest, ":")
	if !ok || checkID(keyID) != nil {
		return "", "", false
	}
	return keyID, data, true
}

// open authenticates and decrypts data, sealed with aead under keyID for
// storeKey.
func open(aead cipher.AEAD, keyID, storeKey, data string) (*oauth2.Token, error) {
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
	var p payload
	if err := json.Unmarshal(plain, &p); err != nil {
		return nil, fmt.Errorf("sealed: key %q: token sealed with key id %q has malformed contents", storeKey, keyID)
	}
	tok := extra.With(&oauth2.Token{
		AccessToken:  p.AccessToken,
		TokenType:    p.TokenType,
		RefreshToken: p.RefreshToken,
		ExpiresIn:    p.ExpiresIn,
	}, extra.FromJSON(p.Extra))
	if p.Expiry != "" {
		if tok.Expiry, err = time.Parse(time.RFC3339Nano, p.Expiry); err != nil {
			return nil, fmt.Errorf("sealed: key %q: token sealed with key id %q has a malformed expiry", storeKey, keyID)
		}
	}
	return tok, nil
}

// Errors that Load (and CompareAndSwap) wrap when a stored value cannot be
// opened. The store then reports an error that is not [refresh.ErrNotFound],
// so the engine makes no token-endpoint call on a guess.
var (
	// ErrNotSealed: the backend holds a token that this package did not
	// write (a plaintext token from before the store was wrapped, say).
	ErrNotSealed = errors.New("sealed: stored token is not sealed")

	// ErrUnknownKeyID: the token was sealed with a key that was not passed
	// to [New] (an old key removed too early, or a new key not yet
	// deployed to this process).
	ErrUnknownKeyID = errors.New("sealed: token sealed with an unknown key id")

	// ErrAuthentication: the token names a known key but does not open
	// with it: the secret behind the ID differs, or the value was altered
	// or copied from another store key.
	ErrAuthentication = errors.New("sealed: sealed token failed authentication")
)

// openError carries a message that names the store key and key ID, and
// unwraps to one of the sentinel errors above.
type openError struct {
	msg string
	err error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.err }
