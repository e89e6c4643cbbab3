package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// JWK is a public key as a JSON Web Key (RFC 7517), with the members a
// thumbprint hashes and no others: kty, and n and e for RSA or crv, x and
// y for EC. It encodes as JSON as a DPoP header's "jwk" wants it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// PublicJWK returns pub, an *rsa.PublicKey or an *ecdsa.PublicKey on
// P-256, as a JWK (RFC 7518 §6.2, §6.3). Never a private member.
func PublicJWK(pub crypto.PublicKey) (JWK, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		// Big-endian, without leading zeros (RFC 7518 §6.3.1).
		return JWK{Kty: "RSA", N: b64.EncodeToString(k.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return JWK{}, errors.New("jose: the ECDSA key is not on P-256")
		}
		b, err := k.Bytes() // 0x04 || X || Y, each 32 bytes as §6.2.1.2 wants
		if err != nil {
			return JWK{}, fmt.Errorf("jose: invalid ECDSA key: %w", err)
		}
		return JWK{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(b[1:33]), Y: b64.EncodeToString(b[33:])}, nil
	}
	return JWK{}, fmt.Errorf("jose: unsupported key type %T", pub)
}

// Thumbprint returns the JWK SHA-256 thumbprint of k (RFC 7638),
// base64url: the hash of its required members in lexicographic order,
// without white space, as DPoP's jkt names a key.
func (k JWK) Thumbprint() (string, error) {
	var members []string // name, value; in order
	switch k.Kty {
	case "RSA":
		members = []string{"e", k.E, "kty", k.Kty, "n", k.N}
	case "EC":
		members = []string{"crv", k.Crv, "kty", k.Kty, "x", k.X, "y", k.Y}
	default:
		return "", fmt.Errorf("jose: no thumbprint for kty %q", k.Kty)
	}
	b := []byte{'{'}
	for i := 0; i < len(members); i += 2 {
		if members[i+1] == "" {
			return "", fmt.Errorf("jose: the JWK has no %q", members[i])
		}
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(members[i])
		value, _ := json.Marshal(members[i+1])
		b = append(append(append(b, name...), ':'), value...)
	}
	b = append(b, '}')
	sum := sha256.Sum256(b)
	return b64.EncodeToString(sum[:]), nil
}
