package conformance_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	foauth2 "github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/storage"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
)

// The client and the user fosite knows. The client id and secret contain
// characters that client_secret_basic must urlencode (RFC 6749 §2.3.1);
// fosite decodes them.
const (
	clientID     = "refresh:conformance"
	clientSecret = "s3cret&+/= x"
	username     = "peter"
	password     = "secret"
)

// callKey tags the context of a token-endpoint request with its call, so
// that the storage wrapper knows which of its calls a refresh made.
type callKey struct{}

type call struct {
	grant  string // grant_type
	engine string // the X-Engine request header; "" when not set
}

func callOf(ctx context.Context) (call, bool) {
	c, ok := ctx.Value(callKey{}).(call)
	return c, ok
}

// serverOptions configures a fositeServer.
type serverOptions struct {
	// accessLifespan is fosite's AccessTokenLifespan. Required.
	accessLifespan time.Duration
	// transactional makes refresh-token rotation conditional, as a
	// transactional store does: see countingStore.RotateRefreshToken.
	transactional bool
}

// fositeServer is a fosite provider on a loopback server:
//
//	POST /token   the token endpoint (password, refresh_token and
//	              client_credentials grants)
//	POST /revoke  RFC 7009 revocation
//	GET  /api     a protected resource: 200, or 401 with
//	              WWW-Authenticate: Bearer error="invalid_token"
//
// and counters of what fosite did.
type fositeServer struct {
	t        *testing.T
	URL      string
	provider fosite.OAuth2Provider
	strategy *foauth2.HMACSHAStrategy
	store    *countingStore

	tokenRequests   atomic.Int64 // POST /token, any grant
	refreshRequests atomic.Int64 // grant_type=refresh_token
	refreshes       atomic.Int64 // refresh_token grants answered 200
	reuses          atomic.Int64 // answers invalid_grant "…already used…"
	revokeRequests  atomic.Int64 // POST /revoke
	apiRequests     atomic.Int64
	apiRejected     atomic.Int64 // 401s from /api

	mu        sync.Mutex       // guards the fields below
	errCodes  map[string]int64 // token-endpoint error code → answers
	presented map[string]int   // sha256 of a refresh token → times presented
	repeats   int64            // refresh requests with a token presented before
	byEngine  map[string]int64 // X-Engine → refresh requests
	expiresIn map[int64]int64  // expires_in of successful refreshes → count

	grants grantCounts // token requests by grant type (grants_test.go)
}

func newFositeServer(t *testing.T, opt serverOptions) *fositeServer {
	t.Helper()
	secret := []byte("0123456789abcdef0123456789abcdef") // HMAC global secret: 32 bytes
	config := &fosite.Config{
		AccessTokenLifespan:  opt.accessLifespan,
		RefreshTokenLifespan: 24 * time.Hour,
		GlobalSecret:         secret,
		HashCost:             bcrypt.MinCost,
		// These getters fill a nil field on first use, a data race when
		// the first requests run concurrently; set them here.
		ScopeStrategy:            fosite.WildcardScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
	}
	config.ClientSecretsHasher = &fosite.BCrypt{Config: config}
	hashed, err := config.ClientSecretsHasher.Hash(context.Background(), []byte(clientSecret))
	if err != nil {
		t.Fatal(err)
	}

	mem := storage.NewMemoryStore()
	mem.Clients[clientID] = &fosite.DefaultClient{
		ID:         clientID,
		Secret:     hashed,
		GrantTypes: []string{"password", "refresh_token"},
		Scopes:     []string{"offline"},
	}
	mem.Users[username] = storage.MemoryUserRelation{Username: username, Password: password}
	addGrantClients(t, config, mem)
	store := &countingStore{MemoryStore: mem, t: t, transactional: opt.transactional}

	// fosite's default refresh-token handling is the strict one: each
	// refresh rotates the refresh token, and a used one is inactive.
	strategy := compose.NewOAuth2HMACStrategy(config)
	provider := compose.Compose(config, store, &compose.CommonStrategy{CoreStrategy: strategy},
		// Deprecated (OAuth 2.1 drops the grant), and the shortest way
		// to a first token pair in a test.
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	)

	s := &fositeServer{
		t: t, provider: provider, strategy: strategy, store: store,
		errCodes: map[string]int64{}, presented: map[string]int{},
		byEngine: map[string]int64{}, expiresIn: map[int64]int64{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	mux.HandleFunc("GET /api", s.serveAPI)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	// The audience fosite requires of client assertions; set before any
	// request.
	config.TokenURL = srv.URL + "/token"
	return s
}

// recorder keeps a copy of what a handler wrote.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(p)
	return r.ResponseWriter.Write(p)
}

func (s *fositeServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	if err := r.ParseForm(); err != nil {
		s.t.Errorf("token endpoint: %v", err)
	}
	c := call{grant: r.PostForm.Get("grant_type"), engine: r.Header.Get("X-Engine")}
	s.noteGrant(c, r)
	if c.grant == "refresh_token" {
		s.refreshRequests.Add(1)
		sum := sha256.Sum256([]byte(r.PostForm.Get("refresh_token")))
		s.mu.Lock()
		if s.presented[string(sum[:])]++; s.presented[string(sum[:])] > 1 {
			s.repeats++
		}
		s.byEngine[c.engine]++
		s.mu.Unlock()
	}
	ctx := context.WithValue(r.Context(), callKey{}, c)
	rec := &recorder{ResponseWriter: w}

	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		s.provider.WriteAccessError(ctx, rec, ar, err)
		s.observe(c, rec)
		return
	}
	if c.grant == "password" {
		// The password handler checks the requested scopes but leaves
		// granting them to the server; "offline" gets a refresh token.
		for _, scope := range ar.GetRequestedScopes() {
			ar.GrantScope(scope)
		}
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, rec, ar, err)
	} else {
		s.provider.WriteAccessResponse(ctx, rec, ar, resp)
	}
	s.observe(c, rec)
}

// observe counts a token-endpoint answer.
func (s *fositeServer) observe(c call, rec *recorder) {
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &body); err != nil {
		s.t.Errorf("token endpoint answered %d with %q: %v", rec.status, rec.body.String(), err)
	}
	s.noteAnswer(c, rec.status)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case rec.status == http.StatusOK && c.grant == "refresh_token":
		s.refreshes.Add(1)
		s.expiresIn[body.ExpiresIn]++
	case body.Error != "":
		s.errCodes[body.Error]++
		if body.Error == "invalid_grant" && strings.Contains(body.Description, "already used") {
			s.reuses.Add(1)
		}
	}
}

func (s *fositeServer) serveRevoke(w http.ResponseWriter, r *http.Request) {
	s.revokeRequests.Add(1)
	err := s.provider.NewRevocationRequest(r.Context(), r)
	s.provider.WriteRevocationResponse(r.Context(), w, err)
}

func (s *fositeServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.apiRequests.Add(1)
	tok := fosite.AccessTokenFromRequest(r)
	use, _, err := s.provider.IntrospectToken(r.Context(), tok, fosite.AccessToken, new(fosite.DefaultSession))
	if err != nil || use != fosite.AccessToken {
		s.apiRejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	io.WriteString(w, "ok")
}

// oauth2Config is the client configuration, with client_secret_basic.
func (s *fositeServer) oauth2Config() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Scopes:       []string{"offline"},
		Endpoint:     oauth2.Endpoint{TokenURL: s.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
}

// formEndpoint is the engine's token endpoint for an engine that names
// itself in the X-Engine header.
func (s *fositeServer) formEndpoint(engine string) *refresh.FormEndpoint {
	return &refresh.FormEndpoint{
		TokenURL: s.URL + "/token", ClientID: clientID, ClientSecret: clientSecret,
		Auth: refresh.AuthBasic, Header: http.Header{"X-Engine": {engine}},
	}
}

// login obtains the first token pair with the password grant.
func (s *fositeServer) login(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := s.oauth2Config().PasswordCredentialsToken(context.Background(), username, password)
	if err != nil {
		t.Fatalf("password grant: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("password grant: no refresh token")
	}
	return tok
}

// revokeAccessInStorage revokes one access token in fosite's storage, and
// nothing else. (fosite's RFC 7009 endpoint would revoke the whole grant.)
func (s *fositeServer) revokeAccessInStorage(t *testing.T, accessToken string) {
	t.Helper()
	ctx := context.Background()
	sig := s.strategy.AccessTokenSignature(ctx, accessToken)
	if _, err := s.store.GetAccessTokenSession(ctx, sig, nil); err != nil {
		t.Fatalf("revoking an access token fosite does not know: %v", err)
	}
	if err := s.store.DeleteAccessTokenSession(ctx, sig); err != nil {
		t.Fatal(err)
	}
}

// revokeAtEndpoint revokes a token through fosite's RFC 7009 endpoint.
func (s *fositeServer) revokeAtEndpoint(t *testing.T, token, hint string) {
	t.Helper()
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
	req, _ := http.NewRequest("POST", s.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(clientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("revocation: %d %s", resp.StatusCode, b)
	}
}

// counts is a snapshot of the server's counters.
type counts struct {
	TokenRequests     int64 // POST /token
	RefreshRequests   int64 // refresh_token grants
	Refreshes         int64 // refresh_token grants answered 200
	Rotations         int64 // RotateRefreshToken calls that succeeded
	Reuses            int64 // invalid_grant "already used" answers
	FamilyRevocations int64 // RevokeRefreshToken called by the token endpoint
	Repeats           int64 // refresh requests with a token presented before
	Conflicts         int64 // rotations a transactional store refused
	APIRequests       int64
	APIRejected       int64
	Errors            map[string]int64 // token-endpoint error code → answers
	ByEngine          map[string]int64 // X-Engine → refresh requests
	ExpiresIn         map[int64]int64  // expires_in of refreshes → count
}

func (s *fositeServer) counts() counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return counts{
		TokenRequests:     s.tokenRequests.Load(),
		RefreshRequests:   s.refreshRequests.Load(),
		Refreshes:         s.refreshes.Load(),
		Rotations:         s.store.rotations.Load(),
		Reuses:            s.reuses.Load(),
		FamilyRevocations: s.store.familyRevocations.Load(),
		Repeats:           s.repeats,
		Conflicts:         s.store.conflicts.Load(),
		APIRequests:       s.apiRequests.Load(),
		APIRejected:       s.apiRejected.Load(),
		Errors:            maps.Clone(s.errCodes),
		ByEngine:          maps.Clone(s.byEngine),
		ExpiresIn:         maps.Clone(s.expiresIn),
	}
}

// sub returns c - o for the scalar counters and the maps.
func (c counts) sub(o counts) counts {
	d := counts{
		TokenRequests:     c.TokenRequests - o.TokenRequests,
		RefreshRequests:   c.RefreshRequests - o.RefreshRequests,
		Refreshes:         c.Refreshes - o.Refreshes,
		Rotations:         c.Rotations - o.Rotations,
		Reuses:            c.Reuses - o.Reuses,
		FamilyRevocations: c.FamilyRevocations - o.FamilyRevocations,
		Repeats:           c.Repeats - o.Repeats,
		Conflicts:         c.Conflicts - o.Conflicts,
		APIRequests:       c.APIRequests - o.APIRequests,
		APIRejected:       c.APIRejected - o.APIRejected,
		Errors:            map[string]int64{},
		ByEngine:          map[string]int64{},
		ExpiresIn:         map[int64]int64{},
	}
	for _, m := range []struct{ a, b, d map[string]int64 }{{c.Errors, o.Errors, d.Errors}, {c.ByEngine, o.ByEngine, d.ByEngine}} {
		for k, v := range m.a {
			if n := v - m.b[k]; n != 0 {
				m.d[k] = n
			}
		}
	}
	for k, v := range c.ExpiresIn {
		if n := v - o.ExpiresIn[k]; n != 0 {
			d.ExpiresIn[k] = n
		}
	}
	return d
}

// errors returns the error answers as "code×n" in a stable order.
func (c counts) errors() string {
	if len(c.Errors) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.Errors)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, c.Errors[k]))
	}
	return strings.Join(parts, " ")
}

// summary is the one line each scenario logs.
func (c counts) summary(requests, failures int64) string {
	return fmt.Sprintf("%d requests, %d failed | fosite: %d token-endpoint calls (%d refresh grants), %d refreshes, "+
		"%d reuses detected, %d family revocations, %d tokens presented twice, errors: %s, %d API 401s",
		requests, failures, c.TokenRequests, c.RefreshRequests, c.Refreshes,
		c.Reuses, c.FamilyRevocations, c.Repeats, c.errors(), c.APIRejected)
}

// expectClean checks the fosite-side counters of a run that must have had
// no reuse, no error answer, and a rotation for every refresh.
func expectClean(t *testing.T, d counts) {
	t.Helper()
	if d.Reuses != 0 || d.FamilyRevocations != 0 || d.Repeats != 0 {
		t.Errorf("fosite saw reuse: %d reuses detected, %d family revocations, %d tokens presented twice; want 0",
			d.Reuses, d.FamilyRevocations, d.Repeats)
	}
	if len(d.Errors) != 0 {
		t.Errorf("token-endpoint errors: %s; want none", d.errors())
	}
	if d.Refreshes != d.RefreshRequests || d.Rotations != d.Refreshes {
		t.Errorf("%d refresh grants, %d refreshes, %d rotations: want them equal", d.RefreshRequests, d.Refreshes, d.Rotations)
	}
}

// countingStore is fosite's MemoryStore, instrumented. Each call holds mu,
// so that it is atomic as a database statement would be: MemoryStore's
// RevokeRefreshToken writes its RefreshTokens map under another mutex than
// its readers hold, a data race. The handler's sequence of calls (read the
// refresh token, rotate, create the new tokens) is not made atomic.
type countingStore struct {
	*storage.MemoryStore
	t *testing.T
	// transactional: RotateRefreshToken refuses a refresh token that is no
	// longer active with fosite.ErrSerializationFailure, which is what a
	// store that rotates in a serializable transaction does for the loser
	// of two concurrent refreshes. fosite's MemoryStore rotates blindly.
	transactional bool

	mu sync.Mutex // held during each call of the embedded store

	familyRevocations atomic.Int64 // RevokeRefreshToken from the token endpoint
	rotations         atomic.Int64
	conflicts         atomic.Int64

	// barrier, when set, holds refresh-grant reads of a refresh token
	// after the read until the barrier's count of them have read.
	barrier atomic.Pointer[barrier]
}

func (s *countingStore) GetRefreshTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	r, err := s.MemoryStore.GetRefreshTokenSession(ctx, sig, sess)
	s.mu.Unlock()
	if c, ok := callOf(ctx); ok && c.grant == "refresh_token" {
		if b := s.barrier.Load(); b != nil {
			b.wait(s.t)
		}
	}
	return r, err
}

func (s *countingStore) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.transactional {
		if _, err := s.MemoryStore.GetRefreshTokenSession(ctx, sig, nil); errors.Is(err, fosite.ErrInactiveToken) {
			s.conflicts.Add(1)
			return fosite.ErrSerializationFailure
		}
	}
	err := s.MemoryStore.RotateRefreshToken(ctx, requestID, sig)
	if err == nil {
		s.rotations.Add(1)
	}
	return err
}

func (s *countingStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := callOf(ctx); ok {
		s.familyRevocations.Add(1) // not the RFC 7009 endpoint: reuse detected
	}
	return s.MemoryStore.RevokeRefreshToken(ctx, requestID)
}

func (s *countingStore) CreateRefreshTokenSession(ctx context.Context, sig, accessSig string, r fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.CreateRefreshTokenSession(ctx, sig, accessSig, r)
}

func (s *countingStore) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.DeleteRefreshTokenSession(ctx, sig)
}

func (s *countingStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.RevokeAccessToken(ctx, requestID)
}

func (s *countingStore) CreateAccessTokenSession(ctx context.Context, sig string, r fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.CreateAccessTokenSession(ctx, sig, r)
}

func (s *countingStore) GetAccessTokenSession(ctx context.Context, sig string, sess fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.GetAccessTokenSession(ctx, sig, sess)
}

func (s *countingStore) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.DeleteAccessTokenSession(ctx, sig)
}

// barrier lets goroutines wait until n of them have arrived.
type barrier struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{} // closed when n have arrived
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait(t *testing.T) {
	b.mu.Lock()
	if b.arrived++; b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
		b.mu.Lock()
		t.Errorf("barrier: only %d of %d arrived", b.arrived, b.n)
		b.mu.Unlock()
	}
}
