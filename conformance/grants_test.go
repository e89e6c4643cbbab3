package conformance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/oauthkit/refresh"
	"github.com/ory/fosite"
	"github.com/ory/fosite/storage"
)

// The clients of the grants without a user: a client credentials client
// that authenticates with its secret (client_secret_basic), and one that
// authenticates with private_key_jwt (RFC 7523 §2.2), signing ES256 with
// jwtKey. fosite takes an assertion only from an OpenID Connect client
// (fosite.DefaultOpenIDConnectClient) whose TokenEndpointAuthMethod is
// private_key_jwt and whose TokenEndpointAuthSigningAlgorithm is the
// assertion's alg (RS256 when unset); it finds the key by kid in the
// client's JSONWebKeys, among keys with use "sig".
const (
	ccClientID     = "refresh:cc"
	ccClientSecret = "cc s3cret&+/="
	jwtClientID    = "refresh:jwt"
	jwtKeyID       = "conformance-es256"
)

// jwtKey is the private_key_jwt client's key, made once per test binary.
var jwtKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
})

// addGrantClients registers the client credentials and private_key_jwt
// clients with fosite. newFositeServer calls it, composes
// compose.OAuth2ClientCredentialsGrantFactory, and sets config.TokenURL:
// fosite refuses every assertion while it is empty, and checks that the
// assertion's aud is it.
func addGrantClients(t *testing.T, config *fosite.Config, mem *storage.MemoryStore) {
	t.Helper()
	hashed, err := config.ClientSecretsHasher.Hash(context.Background(), []byte(ccClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	mem.Clients[ccClientID] = &fosite.DefaultClient{
		ID:         ccClientID,
		Secret:     hashed,
		GrantTypes: []string{"client_credentials"},
	}
	mem.Clients[jwtClientID] = &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{
			ID:         jwtClientID,
			GrantTypes: []string{"client_credentials"},
		},
		JSONWebKeys: &jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: &jwtKey().PublicKey, KeyID: jwtKeyID, Algorithm: "ES256", Use: "sig",
		}}},
		TokenEndpointAuthMethod:           "private_key_jwt",
		TokenEndpointAuthSigningAlgorithm: "ES256",
	}
}

// grantCounts counts the token endpoint's requests by grant type, and the
// client assertions it was sent.
type grantCounts struct {
	mu         sync.Mutex
	requests   map[string]int64 // grant_type → token requests
	ok         map[string]int64 // grant_type → answered 200
	jtis       map[string]int   // jti of a client assertion → times sent
	assertions []string         // the client assertions, in order
}

// noteGrant counts a token request of grant c.grant (serveToken calls it).
func (s *fositeServer) noteGrant(c call, r *http.Request) {
	g := &s.grants
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.requests == nil {
		g.requests, g.ok, g.jtis = map[string]int64{}, map[string]int64{}, map[string]int{}
	}
	g.requests[c.grant]++
	if a := r.PostForm.Get("client_assertion"); a != "" {
		g.assertions = append(g.assertions, a)
		g.jtis[jtiOf(s.t, a)]++
	}
}

// noteAnswer counts a token answer of grant c.grant (observe calls it).
func (s *fositeServer) noteAnswer(c call, status int) {
	if status != http.StatusOK {
		return
	}
	s.grants.mu.Lock()
	s.grants.ok[c.grant]++
	s.grants.mu.Unlock()
}

// grantSnapshot is what grantCounts holds at one time.
type grantSnapshot struct {
	requests, ok map[string]int64
	jtis         map[string]int
	assertions   []string
}

func (s *fositeServer) grantCounts() grantSnapshot {
	g := &s.grants
	g.mu.Lock()
	defer g.mu.Unlock()
	snap := grantSnapshot{requests: map[string]int64{}, ok: map[string]int64{}, jtis: map[string]int{},
		assertions: append([]string(nil), g.assertions...)}
	for k, v := range g.requests {
		snap.requests[k] = v
	}
	for k, v := range g.ok {
		snap.ok[k] = v
	}
	for k, v := range g.jtis {
		snap.jtis[k] = v
	}
	return snap
}

// jtiOf returns the jti claim of a JWT, unverified (fosite verifies it).
func jtiOf(t *testing.T, jwt string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Errorf("client assertion %q is not a compact JWS", jwt)
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct {
		Jti string `json:"jti"`
	}
	if err == nil {
		err = json.Unmarshal(payload, &claims)
	}
	if err != nil {
		t.Errorf("client assertion payload: %v", err)
	}
	return claims.Jti
}

// burst sends n requests to url at once through client and returns how
// many failed, reporting the first.
func burst(t *testing.T, client *http.Client, url string, n int) int64 {
	t.Helper()
	start := make(chan struct{})
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			if err := get(context.Background(), client, url); err != nil && failures.Add(1) == 1 {
				t.Errorf("request failed: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	return failures.Load()
}

const grantBurst = 200

// TestClientCredentials: an engine whose endpoint is refresh.ClientCredentials
// (client_secret_basic) and has no token serves a burst of 200 requests
// with exactly one client_credentials request at fosite; after fosite
// revokes that access token, a second burst of 200 costs exactly one more.
// Every request succeeds and fosite answers no error.
func TestClientCredentials(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	eng, err := refresh.New(refresh.Config{Endpoint: &refresh.ClientCredentials{FormEndpoint: refresh.FormEndpoint{
		TokenURL: s.URL + "/token", ClientID: ccClientID, ClientSecret: ccClientSecret, Auth: refresh.AuthBasic,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	api := s.URL + "/api"

	failures := burst(t, client, api, grantBurst)
	first := s.grantCounts()
	tok, err := eng.Token(context.Background(), refresh.DefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	s.revokeAccessInStorage(t, tok.AccessToken)
	failures += burst(t, client, api, grantBurst)
	second := s.grantCounts()
	d := s.counts()
	t.Logf("client credentials: 2×%d requests, %d failed | fosite: token requests by grant %v (200s %v), errors: %s, %d API requests, %d API 401s",
		grantBurst, failures, second.requests, second.ok, d.errors(), d.APIRequests, d.APIRejected)

	if failures != 0 {
		t.Errorf("%d of %d requests failed", failures, 2*grantBurst)
	}
	if n, ok := first.requests["client_credentials"], first.ok["client_credentials"]; n != 1 || ok != 1 {
		t.Errorf("first burst: %d client_credentials requests, %d answered 200; want 1 and 1", n, ok)
	}
	if n, ok := second.requests["client_credentials"], second.ok["client_credentials"]; n != 2 || ok != 2 {
		t.Errorf("after the revocation: %d client_credentials requests in all, %d answered 200; want 2 and 2", n, ok)
	}
	if d.TokenRequests != 2 || len(d.Errors) != 0 {
		t.Errorf("%d token requests, errors %s; want 2 and none", d.TokenRequests, d.errors())
	}
	if d.APIRejected < 1 {
		t.Error("no API request was rejected after the revocation: the second fetch was not tested")
	}
	if cur, _ := eng.Token(context.Background(), refresh.DefaultKey); cur == nil || cur.AccessToken == tok.AccessToken || cur.RefreshToken != "" {
		t.Errorf("after the revocation the engine holds %+v; want a new access token and no refresh token", cur)
	}
}

const jwtFetches = 6 // client credentials requests of TestPrivateKeyJWT

// TestPrivateKeyJWT: the client credentials grant authenticated by
// refresh.PrivateKeyJWT (ES256, kid) at fosite. A burst of 50 requests,
// then an access token revoked at fosite five times: 6 fetches, each
// answered 200, each with an assertion of a jti of its own (fosite remembers
// jtis until the assertion's exp and refuses one it saw: replaying one of
// the engine's assertions is answered jti_known). Every request succeeds.
func TestPrivateKeyJWT(t *testing.T) {
	s := newFositeServer(t, serverOptions{accessLifespan: time.Hour})
	tokenURL := s.URL + "/token"
	assertion, err := refresh.PrivateKeyJWT(jwtClientID, tokenURL, jwtKey(), &refresh.JWTOptions{KeyID: jwtKeyID})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := refresh.New(refresh.Config{Endpoint: &refresh.ClientCredentials{FormEndpoint: refresh.FormEndpoint{
		TokenURL: tokenURL, ClientID: jwtClientID, Auth: refresh.AuthInBody, Assertion: assertion,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	api := s.URL + "/api"
	ctx := context.Background()

	failures := burst(t, client, api, 50)
	for range jwtFetches - 1 {
		tok, err := eng.Token(ctx, refresh.DefaultKey)
		if err != nil {
			t.Fatal(err)
		}
		s.revokeAccessInStorage(t, tok.AccessToken)
		if err := get(ctx, client, api); err != nil {
			failures++
			t.Errorf("request after a revocation: %v", err)
		}
	}
	g := s.grantCounts()
	d := s.counts()
	t.Logf("private_key_jwt: %d requests, %d failed | fosite: token requests by grant %v (200s %v), %d assertions, %d distinct jtis, errors: %s",
		50+jwtFetches-1, failures, g.requests, g.ok, len(g.assertions), len(g.jtis), d.errors())

	if failures != 0 {
		t.Errorf("%d requests failed", failures)
	}
	if n, ok := g.requests["client_credentials"], g.ok["client_credentials"]; n != jwtFetches || ok != jwtFetches {
		t.Errorf("%d client_credentials requests, %d answered 200; want %d and %d", n, ok, jwtFetches, jwtFetches)
	}
	if len(g.assertions) != jwtFetches || len(g.jtis) != jwtFetches {
		t.Errorf("%d client assertions with %d distinct jtis; want %d and %d", len(g.assertions), len(g.jtis), jwtFetches, jwtFetches)
	}
	if len(d.Errors) != 0 {
		t.Errorf("token-endpoint errors: %s; want none", d.errors())
	}

	// The distinct jtis matter: fosite refuses an assertion it has seen.
	if len(g.assertions) > 0 {
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"client_id":             {jwtClientID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {g.assertions[len(g.assertions)-1]},
		}
		resp, err := http.PostForm(tokenURL, form)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || body.Error != "jti_known" {
			t.Errorf("a replayed assertion: %d %q; want jti_known", resp.StatusCode, body.Error)
		}
	}
}
