package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
)

// A Key is one AES-256 key that seals and opens tokens.
//
// Key formats itself (fmt, log/slog, encoding/json) as its ID and
// "[redacted]", never the secret, so that logging a Key, or a configuration
// that holds one, does not leak it.
type Key struct {
	// ID names the key inside every token it seals, so that the key that
	// sealed a token can still be found after a rotation. Required: 1 to
	// 32 printable ASCII characters, no space and no ':' (a date such as
	// "2026-01" works well). It is stored in the clear, next to the
	// ciphertext: it must not be secret.
	ID string

	// Secret is the AES-256 key itself. Required: exactly 32 bytes from a
	// cryptographic random source, kept in a secret manager, not next to
	// the store it protects. New does not keep a reference to it.
	Secret []byte
}

const (
	maxIDLen  = 32 // keeps the sealed value short and the ID printable in errors
	secretLen = 32 // AES-256
)

// String returns the key's ID and a placeholder for its secret.
func (k Key) String() string {
	return "sealed.Key{ID:" + strconv.Quote(k.ID) + " Secret:[redacted]}"
}

// Format implements [fmt.Formatter] so that no verb (%v, %+v, %#v, %x, %d…)
// prints the secret.
func (k Key) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// LogValue implements [slog.LogValuer] so that no handler (the JSON one
// would marshal the secret as base64) logs the secret.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("secret", "[redacted]"))
}

// MarshalJSON implements [json.Marshaler] with the secret redacted: a
// configuration struct logged as JSON must not carry it. Key can still be
// read from JSON.
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct{ ID, Secret string }{k.ID, "[redacted]"})
}

// checkID reports what is wrong with id, without repeating it: an invalid
// ID may be a secret pasted into the wrong field.
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("empty ID")
	case len(id) > maxIDLen:
		return fmt.Errorf("ID is %d bytes, want at most %d", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == ':' {
			return fmt.Errorf("ID has a character other than printable ASCII without space and ':' at byte %d", i)
		}
	}
	return nil
}

// newAEAD checks k and returns its AES-256-GCM instance. what names the key
// in errors while its ID is not known to be valid ("current key", "old key
// 2").
func newAEAD(k Key, what string) (cipher.AEAD, error) {
	if err := checkID(k.ID); err != nil {
		return nil, fmt.Errorf("sealed: %s: %w", what, err)
	}
	if len(k.Secret) != secretLen {
		return nil, fmt.Errorf("sealed: key %q: secret is %d bytes, want %d (AES-256)", k.ID, len(k.Secret), secretLen)
	}
	if subtle.ConstantTimeCompare(k.Secret, make([]byte, secretLen)) == 1 {
		return nil, fmt.Errorf("sealed: key %q: secret is all zero bytes (never filled?)", k.ID)
	}
	block, err := aes.NewCipher(k.Secret) // copies the key schedule; Secret is not kept
	if err != nil {
		return nil, fmt.Errorf("sealed: key %q: %w", k.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sealed: key %q: %w", k.ID, err)
	}
	return aead, nil
}
