package refresh

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/oauthkit/refresh/internal/testkeys"
	"github.com/oauthkit/refresh/refreshtest"
)

// recorder wraps an Assertion and keeps every assertion it returned.
type recorder struct {
	next func(context.Context) (string, error)
	mu   sync.Mutex
	made []string
}

func (r *recorder) assertion(ctx context.Context) (string, error) {
	a, err := r.next(ctx)
	r.mu.Lock()
	r.made = append(r.made, a)
	r.mu.Unlock()
	return a, err
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.made...)
}

// assertionClient is one client authentication by assertion: the server's
// options for it and the client's Assertion.
type assertionClient struct {
	name string
	opts refreshtest.Options
	make func(audience string) (func(context.Context) (string, error), error)
}

func assertionClients() []assertionClient {
	rsaKey, ecKey := testkeys.RSA(), testkeys.EC()
	id := refreshtest.DefaultClientID
	return []assertionClient{
		{"RS256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: rsaKey.Public()},
			func(aud string) (func(context.Context) (string, error), error) {
				return PrivateKeyJWT(id, aud, rsaKey, nil)
			}},
		{"PS256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: rsaKey.Public()},
			func(aud string) (func(context.Context) (string, error), error) {
				return PrivateKeyJWT(id, aud, rsaKey, &JWTOptions{PSS: true, KeyID: "k1", NotBefore: true})
			}},
		{"ES256", refreshtest.Options{Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: ecKey.Public()},
			func(aud string) (func(context.Context) (string, error), error) {
				return PrivateKeyJWT(id, aud, ecKey, nil)
			}},
		{"HS256", refreshtest.Options{Auth: refreshtest.AuthClientSecretJWT},
			func(aud string) (func(context.Context) (string, error), error) {
				return ClientSecretJWT(id, aud, refreshtest.DefaultClientSecret)
			}},
	}
}

// TestAssertionRefreshes: with each built-in assertion, a strict server
// that accepts nothing else refreshes every time the API rejects the token
// and revokes it; every request carries a new assertion (a new jti) with
// the claims of RFC 7523 §3, a minute long.
func TestAssertionRefreshes(t *testing.T) {
	for _, c := range assertionClients() {
		t.Run(c.name, func(t *testing.T) {
			c.opts.Strict = true
			srv := newServer(t, c.opts)
			a, err := c.make(srv.TokenURL)
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{next: a}
			ep := &FormEndpoint{TokenURL: srv.TokenURL, RevocationURL: srv.RevocationURL, ClientID: refreshtest.DefaultClientID, Assertion: rec.assertion}
			e := newEngine(t, srv, Config{Endpoint: ep})
			for range 3 {
				srv.RevokeAccessTokens()
				if status, _, err := get(t, e.Client(nil), srv.URL+"/v1/me"); status != http.StatusOK || err != nil {
					t.Fatalf("request: status %d, err %v; want 200", status, err)
				}
			}
			if err := ep.Revoke(t.Context(), srv.token()); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if st := srv.Stats(); st.Assertions != 4 || st.AssertionsRejected != 0 || st.Refreshes != 3 || st.Revocations != 1 {
				t.Errorf("server: %d assertions accepted, %d rejected, %d refreshes, %d revocations; want 4, 0, 3, 1",
					st.Assertions, st.AssertionsRejected, st.Refreshes, st.Revocations)
			}
			jtis := map[string]bool{}
			for _, tok := range rec.all() {
				h, c := decodeAssertion(t, tok)
				if c.Iss != refreshtest.DefaultClientID || c.Sub != c.Iss || c.Aud != srv.TokenURL || c.Exp-c.Iat != 60 || len(c.Jti) != 22 {
					t.Errorf("claims %+v, want iss = sub = client, aud the token URL, 60 s, a 128-bit jti", c)
				}
				if (h["kid"] == "k1") != (c.Nbf == c.Iat) || (h["kid"] == "k1") != (h["alg"] == "PS256") {
					t.Errorf("header %v and nbf %d: kid and nbf go with the PS256 client's options", h, c.Nbf)
				}
				jtis[c.Jti] = true
			}
			if len(jtis) != 4 {
				t.Errorf("%d assertions with %d jtis, want 4 different", len(rec.all()), len(jtis))
			}
		})
	}
}

// decodeAssertion reads an assertion's header and claims, unverified.
func decodeAssertion(t *testing.T, tok string) (map[string]any, assertionClaims) {
	t.Helper()
	parts := strings.Split(tok, ".")
	var h map[string]any
	var c assertionClaims
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err := errors.Join(err1, err2, json.Unmarshal(hb, &h), json.Unmarshal(cb, &c)); err != nil || len(parts) != 3 {
		t.Fatalf("assertion %.20s… cannot be read: %v", tok, err)
	}
	return h, c
}

// TestAssertionReplayed: an Assertion that returns the same assertion
// twice gets a refresh, then ErrClientConfig: the server saw the jti.
func TestAssertionReplayed(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Auth: refreshtest.AuthClientSecretJWT, Strict: true})
	a, err := ClientSecretJWT(refreshtest.DefaultClientID, srv.TokenURL, refreshtest.DefaultClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	once, _ := a(t.Context())
	ep := &FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID,
		Assertion: func(context.Context) (string, error) { return once, nil }}
	e := newEngine(t, srv, Config{Endpoint: ep})
	srv.RevokeAccessTokens()
	if status, _, err := get(t, e.Client(nil), srv.URL+"/v1/me"); status != http.StatusOK || err != nil {
		t.Fatalf("first use: status %d, err %v; want 200", status, err)
	}
	srv.expectRefusals("invalid_client")
	srv.RevokeAccessTokens()
	_, _, err = get(t, e.Client(nil), srv.URL+"/v1/me")
	var x *Error
	if !errors.Is(err, ErrClientConfig) || !errors.As(err, &x) || x.Code != "invalid_client" || x.Temporary() {
		t.Errorf("replay: %v, want a final invalid_client", err)
	}
	if st := srv.Stats(); st.AssertionReplays != 1 || st.Refreshes != 1 {
		t.Errorf("server: %d replays, %d refreshes; want 1 and 1", st.AssertionReplays, st.Refreshes)
	}
}

// TestAssertionConfig: New refuses an Assertion beside another client
// authentication, and the constructors refuse what cannot make a valid
// assertion.
func TestAssertionConfig(t *testing.T) {
	a, err := PrivateKeyJWT("id", "https://as.test/token", testkeys.EC(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, ep := range map[string]*FormEndpoint{
		"secret":       {ClientSecret: "s", Auth: AuthInBody},
		"basic":        {Auth: AuthBasic},
		"raw basic":    {Auth: AuthBasicRaw},
		"basic secret": {ClientSecret: "s", Auth: AuthBasic},
	} {
		ep.TokenURL, ep.ClientID, ep.Assertion = "https://as.test/token", "id", a
		if _, err := New(Config{Endpoint: ep}); err == nil || !strings.Contains(err.Error(), "Assertion") {
			t.Errorf("%s: New = %v, want the Assertion refused", name, err)
		}
	}
	if _, err := New(Config{Endpoint: &FormEndpoint{TokenURL: "https://as.test/token", ClientID: "id", Auth: AuthInBody, Assertion: a}}); err != nil {
		t.Errorf("Assertion with AuthInBody and no secret: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for name, f := range map[string]func() (func(context.Context) (string, error), error){
		"no client": func() (func(context.Context) (string, error), error) {
			return PrivateKeyJWT("", "aud", testkeys.EC(), nil)
		},
		"no audience": func() (func(context.Context) (string, error), error) {
			return PrivateKeyJWT("id", "", testkeys.EC(), nil)
		},
		"no key":  func() (func(context.Context) (string, error), error) { return PrivateKeyJWT("id", "aud", nil, nil) },
		"P-384":   func() (func(context.Context) (string, error), error) { return PrivateKeyJWT("id", "aud", p384, nil) },
		"Ed25519": func() (func(context.Context) (string, error), error) { return PrivateKeyJWT("id", "aud", ed, nil) },
		"PSS with EC": func() (func(context.Context) (string, error), error) {
			return PrivateKeyJWT("id", "aud", testkeys.EC(), &JWTOptions{PSS: true})
		},
		"no secret":    func() (func(context.Context) (string, error), error) { return ClientSecretJWT("id", "aud", "") },
		"secret no id": func() (func(context.Context) (string, error), error) { return ClientSecretJWT("", "aud", "s") },
	} {
		if a, err := f(); err == nil || a != nil || !strings.HasPrefix(err.Error(), "refresh: ") {
			t.Errorf("%s: %v, want an error starting refresh:", name, err)
		}
	}
}

// TestAssertionClientCredentials: a client credentials grant (and its
// fetch again after a 401) authenticates with the assertion as a refresh
// does, a new one each time.
func TestAssertionClientCredentials(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true, Auth: refreshtest.AuthPrivateKeyJWT, ClientKey: testkeys.EC().Public()})
	a, err := PrivateKeyJWT(refreshtest.DefaultClientID, srv.TokenURL, testkeys.EC(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Endpoint: &ClientCredentials{FormEndpoint: FormEndpoint{TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID, Assertion: a}}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(t.Context())
	c := &http.Client{Transport: &Transport{Engine: e, Key: "svc"}}
	for range 2 {
		if status, _, err := get(t, c, srv.URL+"/v1/report"); status != http.StatusOK || err != nil {
			t.Fatalf("request: status %d, err %v; want 200", status, err)
		}
		srv.RevokeAccessTokens()
	}
	if st := srv.Stats(); st.ClientCredentialsGrants != 2 || st.Assertions != 2 || st.AssertionsRejected != 0 {
		t.Errorf("server: %d grants, %d assertions accepted, %d rejected; want 2, 2, 0", st.ClientCredentialsGrants, st.Assertions, st.AssertionsRejected)
	}
}
