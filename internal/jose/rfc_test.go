package jose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// The examples of RFC 7515 Appendix A, RFC 7638 §3.1 and RFC 9449 §4.1:
// tokens signed by other implementations, and their keys.
const (
	// rfcPayload is the payload of every RFC 7515 example.
	rfcPayload = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"

	a1Key   = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"
	a1Token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9." + rfcPayload + ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

	a2N     = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ"
	a2D     = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ"
	a2P     = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc"
	a2Q     = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc"
	a2Sig   = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw"
	a2Token = "eyJhbGciOiJSUzI1NiJ9." + rfcPayload + "." + a2Sig

	a3X     = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU"
	a3Y     = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
	a3D     = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
	a3Token = "eyJhbGciOiJFUzI1NiJ9." + rfcPayload + ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"

	// RFC 7638 §3.1.
	thumbN   = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	thumbRSA = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

	// RFC 9449 Figure 2 (a DPoP proof, whose header carries its key) and
	// the key's thumbprint (Figure 9).
	dpopX    = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs"
	dpopY    = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"
	dpopJKT  = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
	dpopRest = ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
	dpopHead = `{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","x":"` + dpopX + `","y":"` + dpopY + `","crv":"P-256"}}`
)

func num(t testing.TB, s string) *big.Int {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatalf("decoding %.10s…: %v", s, err)
	}
	return new(big.Int).SetBytes(b)
}

func a2Key(t testing.TB) *rsa.PrivateKey {
	k := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: num(t, a2N), E: 65537}, D: num(t, a2D), Primes: []*big.Int{num(t, a2P), num(t, a2Q)}}
	if err := k.Validate(); err != nil {
		t.Fatal(err)
	}
	k.Precompute()
	return k
}

func ecPublic(t testing.TB, x, y string) *ecdsa.PublicKey {
	t.Helper()
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, num(t, x).FillBytes(make([]byte, 32))...), num(t, y).FillBytes(make([]byte, 32))...))
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestRFC7515Verify verifies the examples of RFC 7515 Appendix A.1 to A.3,
// and RFC 9449's DPoP proof, whose headers hold CRLF and members in an
// order no encoder of ours writes.
func TestRFC7515Verify(t *testing.T) {
	secret, _ := b64.DecodeString(a1Key)
	for _, c := range []struct {
		name, token string
		key         any
		alg         string
	}{
		{"A.1 HS256", a1Token, secret, HS256},
		{"A.2 RS256", a2Token, &a2Key(t).PublicKey, RS256},
		{"A.3 ES256", a3Token, ecPublic(t, a3X, a3Y), ES256},
		{"RFC 9449 ES256", b64.EncodeToString([]byte(dpopHead)) + dpopRest, ecPublic(t, dpopX, dpopY), ES256},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, claims, err := Verify(c.token, c.key)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if h["alg"] != c.alg {
				t.Errorf("alg %v, want %s", h["alg"], c.alg)
			}
			var m map[string]any
			if err := json.Unmarshal(claims, &m); err != nil || (m["iss"] != "joe" && m["htm"] != "POST") {
				t.Errorf("claims %s (%v)", claims, err)
			}
		})
	}
}

// TestRFC7515Sign: the deterministic algorithms sign the examples' signing
// input exactly as RFC 7515 A.1 and A.2 do, and ES256 signs what A.3's key
// verifies.
func TestRFC7515Sign(t *testing.T) {
	secret, _ := b64.DecodeString(a1Key)
	hs, err := NewHMAC(secret)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewSigner(a2Key(t), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s     Signer
		token string
	}{{hs, a1Token}, {rs, a2Token}} {
		dot := strings.LastIndexByte(c.token, '.')
		sig, err := c.s.Sign(nil, []byte(c.token[:dot]))
		if err != nil {
			t.Fatalf("%s: %v", c.s.Alg(), err)
		}
		if got, want := b64.EncodeToString(sig), c.token[dot+1:]; got != want {
			t.Errorf("%s signature %s, want %s", c.s.Alg(), got, want)
		}
	}
	d, _ := b64.DecodeString(a3D)
	ec, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		t.Fatal(err)
	}
	es, err := NewSigner(ec, "")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Sign(es, nil, map[string]any{"iss": "joe"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Verify(tok, ecPublic(t, a3X, a3Y)); err != nil {
		t.Errorf("A.3's public key does not verify a signature of its private key: %v", err)
	}
}

// TestThumbprintRFC: RFC 7638 §3.1's RSA key and RFC 9449's EC key have
// the thumbprints those documents give, and PublicJWK exports A.3's key
// with the RFC's coordinates.
func TestThumbprintRFC(t *testing.T) {
	for _, c := range []struct {
		k    JWK
		want string
	}{
		{JWK{Kty: "RSA", N: thumbN, E: "AQAB"}, thumbRSA},
		{JWK{Kty: "EC", Crv: "P-256", X: dpopX, Y: dpopY}, dpopJKT},
	} {
		if got, err := c.k.Thumbprint(); got != c.want || err != nil {
			t.Errorf("thumbprint of the %s key %q (%v), want %q", c.k.Kty, got, err, c.want)
		}
	}
	k, err := PublicJWK(ecPublic(t, a3X, a3Y))
	if want := (JWK{Kty: "EC", Crv: "P-256", X: a3X, Y: a3Y}); k != want || err != nil {
		t.Errorf("PublicJWK = %+v (%v), want %+v", k, err, want)
	}
	r, err := PublicJWK(&a2Key(t).PublicKey)
	if want := (JWK{Kty: "RSA", N: a2N, E: "AQAB"}); r != want || err != nil {
		t.Errorf("PublicJWK = %+v (%v), want %+v", r, err, want)
	}
}
