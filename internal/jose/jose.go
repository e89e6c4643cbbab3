// Package jose signs and verifies JSON Web Signatures in the compact
// serialization (RFC 7515) with the algorithms of RFC 7518 that OAuth
// clients use, RS256, PS256, ES256 and HS256, on the standard library
// alone. It is the module's one JOSE code: client assertions (RFC 7523)
// are built on it, and DPoP proofs (RFC 9449) will be.
//
// It holds no more of JOSE than that: no JWE, no JSON serialization, no
// "crit" extensions (a header that names one is refused), and no key is
// ever taken from a token (jku, x5u and jwk are not followed): the
// verifier names the key.
package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
)

// The algorithms (RFC 7518 §3.1).
const (
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	PS256 = "PS256" // RSASSA-PSS with SHA-256, MGF1 with SHA-256 and a 32-byte salt
	ES256 = "ES256" // ECDSA on P-256 with SHA-256; the signature is R||S, 64 bytes
	HS256 = "HS256" // HMAC with SHA-256
)

// minRSABits is the smallest RSA key RFC 7518 §3.3 allows for RS256 and
// PS256.
const minRSABits = 2048

// b64 is the base64url encoding without padding of RFC 7515 §2. Strict:
// a token has one encoding, so it cannot be altered without its
// signature.
var b64 = base64.RawURLEncoding.Strict()

// A Signer makes the signatures of one key with one algorithm.
type Signer interface {
	// Alg is the JWS "alg" of the signatures, such as "ES256".
	Alg() string
	// Sign returns the JWS Signature of signingInput (the encoded header,
	// '.', the encoded payload) in the form of Alg: for ES256 the 64
	// bytes R||S, not ASN.1. rand is the entropy source, where the
	// algorithm needs one.
	Sign(rand io.Reader, signingInput []byte) ([]byte, error)
}

// NewSigner returns a Signer for key, which may live outside the process
// (an HSM, a cloud KMS): an RSA key of at least 2048 bits for RS256 or
// PS256, or an ECDSA P-256 key for ES256. alg "" means RS256 for RSA and
// ES256 for P-256.
func NewSigner(key crypto.Signer, alg string) (Signer, error) {
	if key == nil {
		return nil, errors.New("jose: no key")
	}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if alg == "" {
			alg = RS256
		}
		if alg != RS256 && alg != PS256 {
			return nil, fmt.Errorf("jose: an RSA key signs RS256 or PS256, not %q", alg)
		}
		if pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("jose: the RSA key has %d bits; %s needs at least %d", pub.N.BitLen(), alg, minRSABits)
		}
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, errors.New("jose: an ECDSA key must be on P-256 (ES256)")
		}
		if alg == "" {
			alg = ES256
		}
		if alg != ES256 {
			return nil, fmt.Errorf("jose: a P-256 key signs ES256, not %q", alg)
		}
	default:
		return nil, fmt.Errorf("jose: unsupported key type %T; use RSA or ECDSA P-256", pub)
	}
	return &keySigner{key: key, alg: alg}, nil
}

type keySigner struct {
	key crypto.Signer
	alg string
}

func (k *keySigner) Alg() string { return k.alg }

func (k *keySigner) Sign(rand io.Reader, signingInput []byte) ([]byte, error) {
	digest := sha256.Sum256(signingInput)
	var opts crypto.SignerOpts = crypto.SHA256
	if k.alg == PS256 {
		// RFC 7518 §3.5: the salt is as long as the hash.
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	}
	sig, err := k.key.Sign(rand, digest[:], opts)
	if err != nil {
		return nil, fmt.Errorf("jose: signing failed: %w", err)
	}
	if k.alg == ES256 {
		return rawECDSA(sig)
	}
	return sig, nil
}

// rawECDSA turns the ASN.1 signature a crypto.Signer returns for ECDSA
// into the R||S form of RFC 7518 §3.4, each half 32 bytes.
func rawECDSA(der []byte) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 256 || sig.S.BitLen() > 256 {
		return nil, errors.New("jose: the ECDSA signer returned no ASN.1 signature of P-256")
	}
	out := make([]byte, 64)
	sig.R.FillBytes(out[:32])
	sig.S.FillBytes(out[32:])
	return out, nil
}

// NewHMAC returns an HS256 Signer for secret. RFC 7518 §3.2 asks for at
// least 32 bytes; shorter secrets are accepted, as servers issue them
// for client_secret_jwt, but not an empty one.
func NewHMAC(secret []byte) (Signer, error) {
	if len(secret) == 0 {
		return nil, errors.New("jose: empty HMAC secret")
	}
	return hmacSigner(bytes.Clone(secret)), nil
}

type hmacSigner []byte

func (hmacSigner) Alg() string { return HS256 }

func (h hmacSigner) Sign(_ io.Reader, signingInput []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h)
	m.Write(signingInput)
	return m.Sum(nil), nil
}

// Sign returns the compact JWS of claims, a struct or map that encodes as
// a JSON object, signed by s with crypto/rand. header holds the protected
// header's members besides "alg", which is s's (such as "kid" or "typ");
// it may be nil.
func Sign(s Signer, header map[string]any, claims any) (string, error) {
	if _, ok := header["alg"]; ok {
		return "", errors.New(`jose: the header's "alg" is the signer's`)
	}
	h := make(map[string]any, len(header)+1)
	for k, v := range header {
		h[k] = v
	}
	h["alg"] = s.Alg()
	hb, err := json.Marshal(h)
	if err != nil {
		return "", fmt.Errorf("jose: the header cannot be encoded: %w", err)
	}
	cb, err := json.Marshal(claims)
	if err != nil || len(cb) == 0 || cb[0] != '{' {
		return "", errors.New("jose: the claims do not encode as a JSON object")
	}
	input := make([]byte, 0, b64.EncodedLen(len(hb))+1+b64.EncodedLen(len(cb)))
	input = b64.AppendEncode(input, hb)
	input = append(input, '.')
	input = b64.AppendEncode(input, cb)
	sig, err := s.Sign(rand.Reader, input)
	if err != nil {
		return "", err
	}
	input = append(input, '.')
	return string(b64.AppendEncode(input, sig)), nil
}
