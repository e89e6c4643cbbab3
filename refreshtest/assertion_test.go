package refreshtest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/oauthkit/refresh/internal/jose"
	"github.com/oauthkit/refresh/internal/testkeys"
	"github.com/oauthkit/refresh/refreshtest"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

func signer(t *testing.T, key crypto.Signer, alg string) jose.Signer {
	t.Helper()
	s, err := jose.NewSigner(key, alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsAt are the claims of a valid assertion for srv's default client at
// now, with a new jti.
func claimsAt(srv *refreshtest.Server, now time.Time) map[string]any {
	var jti [16]byte
	rand.Read(jti[:])
	return map[string]any{"iss": refreshtest.DefaultClientID, "sub": refreshtest.DefaultClientID, "aud": srv.TokenURL,
		"jti": hex.EncodeToString(jti[:]), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
}

func sign(t *testing.T, s jose.Signer, claims map[string]any) string {
	t.Helper()
	a, err := jose.Sign(s, nil, claims)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// withAssertion adds a client assertion to form, as a client does.
func withAssertion(form url.Values, assertion string) url.Values {
	form.Set("client_id", refreshtest.DefaultClientID)
	form.Set("client_assertion_type", jwtBearer)
	form.Set("client_assertion", assertion)
	return form
}

func refreshWith(rt, assertion string) url.Values {
	return withAssertion(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, assertion)
}

// TestAssertionAccepted: a strict server takes a valid assertion of each
// algorithm at both endpoints, with aud the token URL, the issuer or an
// array holding one of them.
func TestAssertionAccepted(t *testing.T) {
	for _, c := range []struct {
		name string
		opts refreshtest.Options
		s    func(t *testing.T) jose.Signer
	}{
		{"RS256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: testkeys.RSA().Public()},
			func(t *testing.T) jose.Signer { return signer(t, testkeys.RSA(), jose.RS256) }},
		{"PS256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: testkeys.RSA().Public()},
			func(t *testing.T) jose.Signer { return signer(t, testkeys.RSA(), jose.PS256) }},
		{"ES256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: testkeys.EC().Public()},
			func(t *testing.T) jose.Signer { return signer(t, testkeys.EC(), "") }},
		{"HS256", refreshtest.Options{Auth: refreshtest.AuthClientSecretJWT},
			func(t *testing.T) jose.Signer {
				h, _ := jose.NewHMAC([]byte(refreshtest.DefaultClientSecret))
				return h
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Strict = true
			srv := newServer(t, c.opts)
			s := c.s(t)
			tok := srv.Token()
			rt := tok.RefreshToken
			for _, aud := range []any{srv.TokenURL, srv.Issuer, []string{"https://other.example", srv.Issuer}} {
				claims := claimsAt(srv, time.Now())
				claims["aud"] = aud
				r := do(t, nil, formRequest(t, srv, refreshWith(rt, sign(t, s, claims))))
				if r.status != http.StatusOK {
					t.Fatalf("aud %v: got %d %s, want 200", aud, r.status, r.body)
				}
				rt = r.str("refresh_token")
			}
			f := withAssertion(url.Values{"token": {rt}}, sign(t, s, claimsAt(srv, time.Now())))
			if r := do(t, nil, revocationRequest(t, srv, f)); r.status != http.StatusOK {
				t.Errorf("revocation: got %d %s, want 200", r.status, r.body)
			}
			if st := srv.Stats(); st.Assertions != 4 || st.AssertionsRejected != 0 || st.Refreshes != 3 || st.Revocations != 1 {
				t.Errorf("stats %+v, want 4 assertions, none rejected, 3 refreshes, 1 revocation", st)
			}
		})
	}
}

// TestAssertionRefused: every flaw of an assertion, and every second
// client authentication beside it, is invalid_client with 401, at the
// token and the revocation endpoint, and counted.
func TestAssertionRefused(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true, Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: testkeys.RSA().Public()})
	good := signer(t, testkeys.RSA(), "")
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(testkeys.RSA().Public())
	confused, _ := jose.NewHMAC(der)
	ec := signer(t, testkeys.EC(), "")
	now := time.Now()
	edit := func(f func(map[string]any)) string {
		c := claimsAt(srv, now)
		f(c)
		return sign(t, good, c)
	}
	none := func() string {
		a := sign(t, good, claimsAt(srv, now))
		return "eyJhbGciOiJub25lIn0" + a[len("eyJhbGciOiJSUzI1NiJ9"):len(a)-342] // header none, no signature
	}
	cases := map[string]url.Values{
		"alg none":      refreshWith("", none()),
		"other key":     refreshWith("", sign(t, signer(t, other, ""), claimsAt(srv, now))),
		"EC key":        refreshWith("", sign(t, ec, claimsAt(srv, now))),
		"HS256 pub key": refreshWith("", sign(t, confused, claimsAt(srv, now))),
		"iss":           refreshWith("", edit(func(c map[string]any) { c["iss"] = "mallory" })),
		"sub":           refreshWith("", edit(func(c map[string]any) { c["sub"] = "mallory" })),
		"aud":           refreshWith("", edit(func(c map[string]any) { c["aud"] = srv.URL })),
		"aud array":     refreshWith("", edit(func(c map[string]any) { c["aud"] = []string{srv.URL} })),
		"no jti":        refreshWith("", edit(func(c map[string]any) { delete(c, "jti") })),
		"no exp":        refreshWith("", edit(func(c map[string]any) { delete(c, "exp") })),
		"expired":       refreshWith("", edit(func(c map[string]any) { c["exp"] = now.Add(-time.Second).Unix() })),
		"exp too far":   refreshWith("", edit(func(c map[string]any) { c["exp"] = now.Add(6 * time.Minute).Unix() })),
		"exp a string":  refreshWith("", edit(func(c map[string]any) { c["exp"] = "soon" })),
		"exp year 9999": refreshWith("", edit(func(c map[string]any) { c["exp"] = 253402300799 })),
		"iat future":    refreshWith("", edit(func(c map[string]any) { c["iat"] = now.Add(time.Minute).Unix() })),
		"long-lived":    refreshWith("", edit(func(c map[string]any) { c["iat"] = now.Add(-time.Hour).Unix() })),
		"nbf future":    refreshWith("", edit(func(c map[string]any) { c["nbf"] = now.Add(time.Minute).Unix() })),
		"not a JWT":     refreshWith("", "not-a-jwt"),
		"empty":         refreshWith("", ""),
	}
	typ := refreshWith("", sign(t, good, claimsAt(srv, now)))
	typ.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
	cases["type"] = typ
	id := refreshWith("", sign(t, good, claimsAt(srv, now)))
	id.Set("client_id", "mallory")
	cases["client_id"] = id
	secret := refreshWith("", sign(t, good, claimsAt(srv, now)))
	secret.Set("client_secret", refreshtest.DefaultClientSecret)
	cases["and a secret"] = secret
	cases["a secret only"] = url.Values{"client_id": {refreshtest.DefaultClientID}, "client_secret": {refreshtest.DefaultClientSecret}}
	n := 0
	for name, f := range cases {
		for _, endpoint := range []string{"token", "revocation"} {
			n++
			g := url.Values{}
			for k, v := range f {
				g[k] = v
			}
			var req *http.Request
			if endpoint == "token" {
				g.Set("grant_type", "refresh_token")
				g.Set("refresh_token", srv.Token().RefreshToken)
				req = formRequest(t, srv, g)
			} else {
				g.Set("token", srv.Token().RefreshToken)
				req = revocationRequest(t, srv, g)
			}
			if r := do(t, nil, req); r.status != http.StatusUnauthorized || r.code() != "invalid_client" {
				t.Errorf("%s at the %s endpoint: got %d %s, want 401 invalid_client", name, endpoint, r.status, r.body)
			}
		}
	}
	basic := formRequest(t, srv, refreshWith(srv.Token().RefreshToken, sign(t, good, claimsAt(srv, now))), func(r *http.Request) {
		r.SetBasicAuth(refreshtest.DefaultClientID, refreshtest.DefaultClientSecret)
	})
	if r := do(t, nil, basic); r.status != http.StatusUnauthorized || r.code() != "invalid_client" {
		t.Errorf("assertion and Basic: got %d %s, want 401 invalid_client", r.status, r.body)
	}
	n++
	if st := srv.Stats(); st.AssertionsRejected != n || st.InvalidClient != n || st.Assertions != 0 || st.Refreshes != 0 || st.Revocations != 0 {
		t.Errorf("stats %+v, want %d assertions rejected and nothing granted", st, n)
	}
}

// TestAssertionReplay: an assertion is accepted once, at either endpoint;
// once it has expired its jti is forgotten, and the assertion is refused
// for its exp.
func TestAssertionReplay(t *testing.T) {
	clk := newClock()
	srv := newServer(t, refreshtest.Options{Auth: refreshtest.AuthClientSecretJWT, Now: clk.Now, Lifetime: -1})
	h, _ := jose.NewHMAC([]byte(refreshtest.DefaultClientSecret))
	a := sign(t, h, claimsAt(srv, clk.Now()))
	tok := srv.Token()
	r := do(t, nil, formRequest(t, srv, refreshWith(tok.RefreshToken, a)))
	if r.status != http.StatusOK {
		t.Fatalf("first use: got %d %s", r.status, r.body)
	}
	for _, req := range []*http.Request{
		formRequest(t, srv, refreshWith(r.str("refresh_token"), a)),
		revocationRequest(t, srv, withAssertion(url.Values{"token": {r.str("refresh_token")}}, a)),
	} {
		if r := do(t, nil, req); r.status != http.StatusUnauthorized || r.code() != "invalid_client" {
			t.Errorf("replay: got %d %s, want 401 invalid_client", r.status, r.body)
		}
	}
	clk.Advance(time.Minute)
	if r := do(t, nil, formRequest(t, srv, refreshWith(r.str("refresh_token"), a))); r.status != http.StatusUnauthorized {
		t.Errorf("expired replay: got %d %s, want 401", r.status, r.body)
	}
	if st := srv.Stats(); st.Assertions != 1 || st.AssertionReplays != 2 || st.AssertionsRejected != 3 || st.Refreshes != 1 {
		t.Errorf("stats %+v, want 1 assertion accepted, 2 replays among 3 rejected, 1 refresh", st)
	}
}

// TestAssertionOptions: AuthPrivateKeyJWT needs a key it can verify with.
func TestAssertionOptions(t *testing.T) {
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, key := range map[string]crypto.PublicKey{"none": nil, "Ed25519": ed.Public(), "P-384": p384.Public(), "private": testkeys.RSA()} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: NewServer accepted the key", name)
				}
			}()
			refreshtest.NewServer(refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: key}).Close()
		}()
	}
	if got := refreshtest.AuthPrivateKeyJWT.String() + " " + refreshtest.AuthClientSecretJWT.String(); got != "AuthPrivateKeyJWT AuthClientSecretJWT" {
		t.Errorf("String: %q", got)
	}
}
