package jose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// MaxSize bounds the tokens Verify reads. An assertion or a DPoP proof
// is well under 4 KiB; anything much larger is an attack on the parser.
const MaxSize = 16 << 10

// ErrSignature is wrapped by Verify's error when the signature does not
// match: the token was altered, or signed by another key.
var ErrSignature = errors.New("jose: signature does not match")

// Verify checks the compact JWS token with key and returns its protected
// header and its payload, the claims, which must be a JSON object.
//
// key decides the algorithm, never the token (RFC 8725 §2.1, §3.1): an
// *rsa.PublicKey of at least 2048 bits verifies RS256 or PS256, an
// *ecdsa.PublicKey on P-256 ES256, a []byte secret HS256. Any other
// "alg", "none" above all, is refused, as is a header with "crit" (no
// extension is understood) and a token over MaxSize. Claims are not
// checked: that is the caller's part.
func Verify(token string, key any) (header map[string]any, claims []byte, err error) {
	if len(token) > MaxSize {
		return nil, nil, fmt.Errorf("jose: token of %d bytes, more than %d", len(token), MaxSize)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("jose: not a compact JWS (three parts separated by dots)")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, nil, errors.New("jose: the header is not base64url")
	}
	if header, err = object(hb); err != nil {
		return nil, nil, fmt.Errorf("jose: the header: %w", err)
	}
	alg, _ := header["alg"].(string)
	if _, ok := header["crit"]; ok {
		return nil, nil, errors.New(`jose: the header has "crit"; no extension is supported`)
	}
	if err := keyFits(key, alg); err != nil {
		return nil, nil, err
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, nil, errors.New("jose: the signature is not base64url")
	}
	if !verify(key, alg, []byte(token[:len(parts[0])+1+len(parts[1])]), sig) {
		return nil, nil, ErrSignature
	}
	claims, err = b64.DecodeString(parts[1])
	if err != nil {
		return nil, nil, errors.New("jose: the payload is not base64url")
	}
	if _, err := object(claims); err != nil {
		return nil, nil, fmt.Errorf("jose: the payload: %w", err)
	}
	return header, claims, nil
}

// object decodes b, which must be one JSON object; numbers stay
// json.Number, so that none loses precision.
func object(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, errors.New("not a JSON object")
	}
	if d.More() {
		return nil, errors.New("data after the JSON object")
	}
	return m, nil
}

// keyFits reports whether key is of a type and size that alg is for.
func keyFits(key any, alg string) error {
	var ok bool
	switch k := key.(type) {
	case *rsa.PublicKey:
		ok = alg == RS256 || alg == PS256
		if ok && k.N.BitLen() < minRSABits {
			return fmt.Errorf("jose: the RSA key has %d bits, fewer than %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		ok = alg == ES256
		if ok && k.Curve != elliptic.P256() {
			return errors.New("jose: the ECDSA key is not on P-256")
		}
	case []byte:
		ok = alg == HS256
		if ok && len(k) == 0 {
			return errors.New("jose: empty HMAC secret")
		}
	default:
		return fmt.Errorf("jose: unsupported key type %T", key)
	}
	if !ok {
		return fmt.Errorf("jose: alg %q does not go with a key of type %T", alg, key)
	}
	return nil
}

// verify checks sig over input; keyFits(key, alg) holds.
func verify(key any, alg string, input, sig []byte) bool {
	digest := sha256.Sum256(input)
	switch k := key.(type) {
	case *rsa.PublicKey:
		if alg == PS256 {
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
			return rsa.VerifyPSS(k, crypto.SHA256, digest[:], sig, opts) == nil
		}
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false // an ASN.1 signature too: RFC 7518 §3.4 wants R||S
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k, digest[:], r, s)
	case []byte:
		m := hmac.New(sha256.New, k)
		m.Write(input)
		return hmac.Equal(m.Sum(nil), sig)
	}
	return false
}
