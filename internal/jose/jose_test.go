package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"strings"
	"testing"

	"github.com/oauthkit/refresh/internal/testkeys"
)

var hmacKey = []byte("a secret of thirty-two bytes, ok")

// signers returns one Signer of each algorithm, with its verification key.
func signers(t *testing.T) map[string]struct {
	s   Signer
	key any
} {
	t.Helper()
	out := map[string]struct {
		s   Signer
		key any
	}{}
	for alg, k := range map[string]crypto.Signer{RS256: testkeys.RSA(), PS256: testkeys.RSA(), ES256: testkeys.EC()} {
		s, err := NewSigner(k, alg)
		if err != nil {
			t.Fatal(err)
		}
		out[alg] = struct {
			s   Signer
			key any
		}{s, k.Public()}
	}
	h, err := NewHMAC(hmacKey)
	if err != nil {
		t.Fatal(err)
	}
	out[HS256] = struct {
		s   Signer
		key any
	}{h, hmacKey}
	return out
}

type claims struct {
	Iss string `json:"iss"`
	Exp int64  `json:"exp"`
}

// TestRoundTrip: every algorithm verifies what it signs, with the header
// members given and the claims as they were.
func TestRoundTrip(t *testing.T) {
	for alg, c := range signers(t) {
		t.Run(alg, func(t *testing.T) {
			tok, err := Sign(c.s, map[string]any{"kid": "k1", "typ": "JWT"}, claims{"me", 1300819380})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(tok, "=") || strings.Count(tok, ".") != 2 {
				t.Errorf("token %q is not compact base64url without padding", tok)
			}
			h, b, err := Verify(tok, c.key)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if h["alg"] != alg || h["kid"] != "k1" || h["typ"] != "JWT" || len(h) != 3 {
				t.Errorf("header %v, want alg %s, kid k1, typ JWT", h, alg)
			}
			var got claims
			if err := json.Unmarshal(b, &got); err != nil || got != (claims{"me", 1300819380}) {
				t.Errorf("claims %s (%v)", b, err)
			}
			if alg == ES256 {
				sig, _ := b64.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
				if len(sig) != 64 {
					t.Errorf("ES256 signature of %d bytes, want R||S (64)", len(sig))
				}
			}
		})
	}
}

// TestTampered: a change to any part of a token, or another key, fails the
// signature.
func TestTampered(t *testing.T) {
	other, err := NewHMAC([]byte("another secret of thirty-two b.."))
	if err != nil {
		t.Fatal(err)
	}
	for alg, c := range signers(t) {
		t.Run(alg, func(t *testing.T) {
			tok, err := Sign(c.s, map[string]any{"kid": "k1"}, claims{"me", 1})
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(tok, ".")
			enc := func(v any) string { b, _ := json.Marshal(v); return b64.EncodeToString(b) }
			sig, _ := b64.DecodeString(parts[2])
			sig[len(sig)/2] ^= 1
			altered := map[string]string{
				"signature": parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig),
				"header":    enc(map[string]any{"alg": alg, "kid": "k2"}) + "." + parts[1] + "." + parts[2],
				"claims":    parts[0] + "." + enc(claims{"you", 1}) + "." + parts[2],
				"swapped":   parts[0] + "." + parts[1] + "." + strings.Split(mustSign(t, c.s), ".")[2],
			}
			if alg == HS256 {
				altered["key"] = mustSign(t, other)
			}
			for what, bad := range altered {
				if _, _, err := Verify(bad, c.key); !errors.Is(err, ErrSignature) {
					t.Errorf("altered %s: %v, want ErrSignature", what, err)
				}
			}
		})
	}
}

func mustSign(t *testing.T, s Signer) string {
	t.Helper()
	tok, err := Sign(s, nil, claims{"other", 2})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestAlgConfusion: the key decides the algorithm. An HS256 token whose
// secret is the RSA public key (each form a server might hold it in), a
// token of another family, and alg "none" are refused, without a look at
// the signature.
func TestAlgConfusion(t *testing.T) {
	pub := &testkeys.RSA().PublicKey
	der, _ := x509.MarshalPKIXPublicKey(pub)
	all := signers(t)
	family := map[string]string{RS256: "RSA", PS256: "RSA", ES256: "EC", HS256: "oct"}
	for name, secret := range map[string][]byte{
		"DER": der, "PEM": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), "modulus": pub.N.Bytes(),
	} {
		h, _ := NewHMAC(secret)
		tok := mustSign(t, h)
		if _, _, err := Verify(tok, pub); err == nil || errors.Is(err, ErrSignature) {
			t.Errorf("HS256 with the RSA key's %s as secret, verified with the RSA key: %v, want refused for its alg", name, err)
		}
	}
	for alg, c := range all {
		tok := mustSign(t, c.s)
		for other, o := range all {
			if family[alg] == family[other] {
				continue // RS256 and PS256 are both RSA's
			}
			if _, _, err := Verify(tok, o.key); err == nil || errors.Is(err, ErrSignature) {
				t.Errorf("%s token verified with the %s key: %v, want refused for its alg", alg, other, err)
			}
		}
	}
	none := b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + b64.EncodeToString([]byte(`{"iss":"me"}`)) + "."
	noAlg := b64.EncodeToString([]byte(`{"kid":"k"}`)) + "." + b64.EncodeToString([]byte(`{"iss":"me"}`)) + ".AAAA"
	for alg, c := range all {
		for _, tok := range []string{none, noAlg} {
			if _, _, err := Verify(tok, c.key); err == nil {
				t.Errorf("%s key accepted %q", alg, tok)
			}
		}
	}
}

// TestMalformed: what is not one compact JWS of ours is refused.
func TestMalformed(t *testing.T) {
	h, _ := NewHMAC(hmacKey)
	tok := mustSign(t, h)
	parts := strings.Split(tok, ".")
	signed := func(header, payload string) string {
		in := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(payload))
		sig, _ := h.Sign(nil, []byte(in))
		return in + "." + b64.EncodeToString(sig)
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"two parts":      parts[0] + "." + parts[1],
		"JWE":            tok + ".x.y",
		"padding":        parts[0] + "." + parts[1] + "." + parts[2] + "=",
		"standard b64":   parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+/",
		"oversized":      signed(`{"alg":"HS256"}`, `{"x":"`+strings.Repeat("a", MaxSize)+`"}`),
		"crit":           signed(`{"alg":"HS256","crit":["b64"],"b64":false}`, `{"iss":"me"}`),
		"array payload":  signed(`{"alg":"HS256"}`, `["iss"]`),
		"two objects":    signed(`{"alg":"HS256"}{"alg":"none"}`, `{"iss":"me"}`),
		"header not obj": signed(`"HS256"`, `{"iss":"me"}`),
		"null payload":   signed(`{"alg":"HS256"}`, `null`),
	} {
		if _, _, err := Verify(bad, hmacKey); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An ES256 signature in ASN.1, as some libraries wrongly send it.
	in := b64.EncodeToString([]byte(`{"alg":"ES256"}`)) + "." + parts[1]
	der, err := testkeys.EC().Sign(rand.Reader, sum(in), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(in+"."+b64.EncodeToString(der), &testkeys.EC().PublicKey); !errors.Is(err, ErrSignature) {
		t.Errorf("ASN.1 ES256 signature: %v, want ErrSignature", err)
	}
}

func sum(s string) []byte {
	h := crypto.SHA256.New()
	io.WriteString(h, s)
	return h.Sum(nil)
}

// fakeSigner is a crypto.Signer with any public key, whose signatures are
// sig.
type fakeSigner struct {
	pub crypto.PublicKey
	sig []byte
	err error
}

func (f fakeSigner) Public() crypto.PublicKey { return f.pub }
func (f fakeSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return f.sig, f.err
}

// TestNewSignerRefuses keys and algorithms that do not go together, and a
// signer that fails or answers in the wrong form.
func TestNewSignerRefuses(t *testing.T) {
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	small := fakeSigner{pub: &rsa.PublicKey{N: new(big.Int).Lsh(big.NewInt(1), 1023), E: 65537}}
	for name, c := range map[string]struct {
		key crypto.Signer
		alg string
	}{
		"nil": {nil, ""}, "P-384": {p384, ""}, "Ed25519": {ed, ""}, "RSA 1024": {small, ""},
		"RSA ES256": {testkeys.RSA(), ES256}, "EC PS256": {testkeys.EC(), PS256}, "RSA HS256": {testkeys.RSA(), HS256}, "RSA none": {testkeys.RSA(), "none"},
	} {
		if _, err := NewSigner(c.key, c.alg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewHMAC(nil); err == nil {
		t.Error("empty HMAC secret accepted")
	}
	for name, f := range map[string]fakeSigner{
		"raw": {pub: &testkeys.EC().PublicKey, sig: make([]byte, 64)},
		"err": {pub: &testkeys.EC().PublicKey, err: errors.New("the HSM is unplugged")},
	} {
		s, err := NewSigner(f, "")
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := Sign(s, nil, claims{}); err == nil {
			t.Errorf("%s: signed %q", name, tok)
		}
	}
	h, _ := NewHMAC(hmacKey)
	if _, err := Sign(h, map[string]any{"alg": "none"}, claims{}); err == nil {
		t.Error(`Sign took "alg" from the header`)
	}
	if _, err := Sign(h, nil, "a string"); err == nil {
		t.Error("Sign took claims that are not an object")
	}
}
