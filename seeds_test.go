package refresh

// Tests that speak the dialects of the four seed APIs (/work/shared/seeds,
// PROVIDERS.md) exactly as documented, over real HTTP, and drive the
// Transport through a normal request, a 401 that is cured by one refresh, a
// series of rotations, and a refused refresh token.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// seedReporter receives the fake servers' complaints about a token request:
// the test's *testing.T, or a seedRecorder in the tests of the fakes.
type seedReporter interface {
	Errorf(format string, args ...any)
}

// seedRotation is what a fake token endpoint does with the refresh token.
type seedRotation int

const (
	// seedRotate issues a new refresh token with every refresh; the one
	// presented is spent, and presenting it again is a reuse that revokes
	// the whole family (RFC 9700 §4.14.2).
	seedRotate seedRotation = iota
	// seedSameRT returns the presented refresh token again.
	seedSameRT
	// seedOmitRT returns no refresh_token; the old one stays valid.
	seedOmitRT
)

// seedDialect describes one seed API's token endpoint and protected API.
type seedDialect struct {
	name string
	path string // token endpoint path
	// check validates a token request strictly, reporting every deviation
	// from the dialect to rep, and returns the refresh token it carries;
	// ok false means the server refuses the request (invalid_request).
	check     func(rep seedReporter, r *http.Request) (rt string, ok bool)
	errStatus int          // HTTP status of the token endpoint's OAuth errors
	rotation  seedRotation // what a refresh does to the refresh token
	expiresIn int          // expires_in of issued tokens
	tokenType string       // token_type of issued tokens
	extra     map[string]any
	firstRT   string // the refresh token of the initial login
	rtFormat  string // fmt format (one %d) of issued refresh tokens
	secret    string // the client secret, which must never show in errors
	challenge string // WWW-Authenticate of the API's 401; "" for none
}

// seedServer is a fake of one seed API: an httptest token endpoint that
// validates every request strictly, and a protected API that accepts only
// the one current access token (gw2.me: one access token per client and
// user, so each refresh kills the previous one). Its counters are exact.
type seedServer struct {
	rep seedReporter
	d   seedDialect

	mu        sync.Mutex
	access    string          // the only valid access token; "" = none
	refresh   string          // the current refresh token
	issued    map[string]bool // every refresh token ever issued
	spent     map[string]bool // refresh tokens used up by a rotation
	revoked   bool            // the family was revoked after a reuse
	expired   bool            // the current refresh token is refused with refuse
	refuse    func(w http.ResponseWriter, rt string)
	presented []string // refresh tokens received, in order
	n         int      // refreshes granted

	tokenCalls atomic.Int64 // token endpoint requests
	reuses     atomic.Int64 // spent refresh tokens presented
	served401  atomic.Int64 // 401s from the API

	token *httptest.Server
	api   *httptest.Server
}

// newSeedServer starts a fake of d. rep nil means t.
func newSeedServer(t testing.TB, rep seedReporter, d seedDialect) *seedServer {
	t.Helper()
	if rep == nil {
		rep = t
	}
	s := &seedServer{
		rep: rep, d: d,
		access:  d.name + "-at-0",
		refresh: d.firstRT,
		issued:  map[string]bool{d.firstRT: true},
		spent:   map[string]bool{},
		refuse: func(w http.ResponseWriter, _ string) {
			seedOAuthError(w, d.errStatus, "invalid_grant", "Refresh token has expired or is invalid.")
		},
	}
	s.token = httptest.NewServer(http.HandlerFunc(s.serveToken))
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.token.Close)
	t.Cleanup(s.api.Close)
	return s
}

// initial is the token of the initial login, as the client stores it.
func (s *seedServer) initial() *oauth2.Token {
	return &oauth2.Token{AccessToken: s.d.name + "-at-0", RefreshToken: s.d.firstRT, TokenType: "Bearer"}
}

// current returns the server's valid access and refresh tokens.
func (s *seedServer) current() (at, rt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.access, s.refresh
}

// expireAccess makes the API reject the current access token.
func (s *seedServer) expireAccess() {
	s.mu.Lock()
	s.access = ""
	s.mu.Unlock()
}

// expireRefresh makes the token endpoint refuse the current refresh token
// with refuse (nil: the dialect's invalid_grant).
func (s *seedServer) expireRefresh(refuse func(w http.ResponseWriter, rt string)) {
	s.mu.Lock()
	s.expired = true
	if refuse != nil {
		s.refuse = refuse
	}
	s.mu.Unlock()
}

// received returns the refresh tokens the token endpoint received.
func (s *seedServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.presented)
}

// secrets returns every token the server issued and the client secret.
func (s *seedServer) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if s.d.secret != "" {
		out = append(out, s.d.secret)
	}
	for rt := range s.issued {
		out = append(out, rt)
	}
	for i := 0; i <= s.n; i++ {
		out = append(out, fmt.Sprintf("%s-at-%d", s.d.name, i))
	}
	return out
}

func (s *seedServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	if r.Method != http.MethodPost {
		s.rep.Errorf("%s token endpoint: got method %q, want POST", s.d.name, r.Method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path != s.d.path || r.URL.RawQuery != "" {
		s.rep.Errorf("%s token endpoint: got %q, want path %q without query", s.d.name, r.URL.RequestURI(), s.d.path)
		http.NotFound(w, r)
		return
	}
	rt, ok := s.d.check(s.rep, r)
	if !ok {
		seedOAuthError(w, s.d.errStatus, "invalid_request", "Missing refresh token.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presented = append(s.presented, rt)
	switch {
	case s.spent[rt]:
		s.reuses.Add(1)
		s.revoked = true
		s.access, s.refresh = "", ""
		seedOAuthError(w, s.d.errStatus, "invalid_grant", "Refresh token was already used; authorization revoked.")
	case !s.issued[rt]:
		s.rep.Errorf("%s token endpoint: got refresh token %q, which was never issued", s.d.name, rt)
		seedOAuthError(w, s.d.errStatus, "invalid_grant", "Unknown refresh token.")
	case s.revoked:
		seedOAuthError(w, s.d.errStatus, "invalid_grant", "Authorization revoked.")
	case rt != s.refresh:
		s.rep.Errorf("%s token endpoint: got refresh token %q, want the current %q", s.d.name, rt, s.refresh)
		seedOAuthError(w, s.d.errStatus, "invalid_grant", "Refresh token is not current.")
	case s.expired:
		s.refuse(w, rt)
	default:
		s.n++
		at := fmt.Sprintf("%s-at-%d", s.d.name, s.n)
		s.access = at // one access token per client and user: the old one dies
		resp := map[string]any{"access_token": at, "token_type": s.d.tokenType, "expires_in": s.d.expiresIn}
		for k, v := range s.d.extra {
			resp[k] = v
		}
		switch s.d.rotation {
		case seedRotate:
			s.spent[rt] = true
			s.refresh = fmt.Sprintf(s.d.rtFormat, s.n)
			s.issued[s.refresh] = true
			resp["refresh_token"] = s.refresh
		case seedSameRT:
			resp["refresh_token"] = rt
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(resp)
	}
}

func (s *seedServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := s.access != "" && r.Header.Get("Authorization") == "Bearer "+s.access
	s.mu.Unlock()
	if !ok {
		s.served401.Add(1)
		if s.d.challenge != "" {
			w.Header().Set("WWW-Authenticate", s.d.challenge)
		}
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	io.WriteString(w, "ok")
}

func seedOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// seedForm checks a form-encoded request and that its body holds exactly
// the parameters keys, once each, with grant_type=refresh_token.
func seedForm(rep seedReporter, name string, r *http.Request, keys ...string) (url.Values, bool) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		rep.Errorf("%s token endpoint: got Content-Type %q, want application/x-www-form-urlencoded", name, r.Header.Get("Content-Type"))
		return nil, false
	}
	if err := r.ParseForm(); err != nil {
		rep.Errorf("%s token endpoint: body is not a form: %v", name, err)
		return nil, false
	}
	ok := true
	got := slices.Sorted(func(yield func(string) bool) {
		for k := range r.PostForm {
			if !yield(k) {
				return
			}
		}
	})
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		rep.Errorf("%s token endpoint: got form parameters %q, want exactly %q", name, got, want)
		ok = false
	}
	for k, vs := range r.PostForm {
		if len(vs) != 1 {
			rep.Errorf("%s token endpoint: got parameter %s %d times, want once", name, k, len(vs))
			ok = false
		}
	}
	if g := r.PostForm.Get("grant_type"); g != "refresh_token" {
		rep.Errorf("%s token endpoint: got grant_type %q, want %q", name, g, "refresh_token")
		ok = false
	}
	return r.PostForm, ok
}

// seedNoAuthorization reports an Authorization header on a token request
// whose dialect authenticates otherwise.
func seedNoAuthorization(rep seedReporter, name string, r *http.Request) bool {
	if h, ok := r.Header["Authorization"]; ok {
		rep.Errorf("%s token endpoint: got Authorization %q, want none", name, h)
		return false
	}
	return true
}

// seedFormEncoded reports whether s could be the output of the
// application/x-www-form-urlencoded encoding: nothing that encoding escapes
// is left raw.
func seedFormEncoded(s string) bool {
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~*%+", c) >= 0) {
			return false
		}
	}
	return true
}

// gw2.me (seed 000).
const (
	seedGW2ID     = "gw2-client-7f3a"
	seedGW2Secret = "gw2 s3cret+/&=" // needs form encoding in the body
	// The raw-Basic variant: gw2.me does not URL-decode Basic credentials.
	seedGW2RawID     = "my client"
	seedGW2RawSecret = "s+cr&t="
)

// seedGW2 is gw2.me as seed 000 documents it: POST /api/token, a form with
// grant_type, refresh_token, client_id and client_secret; a request that
// also carries an Authorization header is refused; every OAuth error is an
// HTTP 500 with a JSON body; a bare 401 from the API.
func seedGW2(rot seedRotation) seedDialect {
	return seedDialect{
		name: "gw2", path: "/api/token", errStatus: http.StatusInternalServerError,
		rotation: rot, expiresIn: 604800, tokenType: "Bearer",
		firstRT: "gw2-rt-0", rtFormat: "gw2-rt-%d", secret: seedGW2Secret,
		check: func(rep seedReporter, r *http.Request) (string, bool) {
			if h := r.Header.Get("Authorization"); h != "" {
				rep.Errorf("gw2 token endpoint: got Authorization %q as well as body credentials; gw2.me rejects both at once", h)
				return "", false
			}
			f, ok := seedForm(rep, "gw2", r, "grant_type", "refresh_token", "client_id", "client_secret")
			if got := f.Get("client_id"); got != seedGW2ID {
				rep.Errorf("gw2 token endpoint: got client_id %q, want %q", got, seedGW2ID)
				ok = false
			}
			if got := f.Get("client_secret"); got != seedGW2Secret {
				rep.Errorf("gw2 token endpoint: got client_secret %q, want %q", got, seedGW2Secret)
				ok = false
			}
			return f.Get("refresh_token"), ok
		},
	}
}

// seedGW2Raw is a gw2-like server that takes client credentials only as
// raw HTTP Basic (not URL-decoded) and a body without them.
func seedGW2Raw() seedDialect {
	d := seedGW2(seedRotate)
	d.secret = seedGW2RawSecret
	d.check = func(rep seedReporter, r *http.Request) (string, bool) {
		id, secret, ok := r.BasicAuth()
		if !ok {
			rep.Errorf("gw2 (raw Basic) token endpoint: got Authorization %q, want Basic", r.Header.Get("Authorization"))
			return "", false
		}
		if id != seedGW2RawID || secret != seedGW2RawSecret {
			rep.Errorf("gw2 (raw Basic) token endpoint: got Basic credentials %q:%q, want the raw %q:%q (the server does not URL-decode them)",
				id, secret, seedGW2RawID, seedGW2RawSecret)
			ok = false
		}
		f, fok := seedForm(rep, "gw2 (raw Basic)", r, "grant_type", "refresh_token")
		return f.Get("refresh_token"), ok && fok
	}
	return d
}

// WSO2 API Manager (seed 001).
const (
	seedWSO2ID     = "wso2 app"
	seedWSO2Secret = "p@ss:w/rd"
)

// seedWSO2 is WSO2 API Manager as seed 001 documents it: POST /token with
// Authorization: Basic (RFC 6749 §2.3.1: id and secret form-urlencoded,
// then base64; the server decodes them) and the body
// grant_type=refresh_token&refresh_token=…&scope=PRODUCTION; OAuth errors
// are 400 JSON. rot is RenewRefreshTokenForRefreshGrant: seedRotate (true,
// the default) or seedSameRT / seedOmitRT (false).
func seedWSO2(rot seedRotation) seedDialect {
	return seedDialect{
		name: "wso2", path: "/token", errStatus: http.StatusBadRequest,
		rotation: rot, expiresIn: 3600, tokenType: "Bearer", extra: map[string]any{"scope": "PRODUCTION"},
		firstRT: "wso2-rt-0", rtFormat: "wso2-rt-%d", secret: seedWSO2Secret,
		challenge: `Bearer error="invalid_token"`,
		check: func(rep seedReporter, r *http.Request) (string, bool) {
			rawID, rawSecret, ok := r.BasicAuth()
			if !ok {
				rep.Errorf("wso2 token endpoint: got Authorization %q, want Basic", r.Header.Get("Authorization"))
				return "", false
			}
			if !seedFormEncoded(rawID) || !seedFormEncoded(rawSecret) {
				rep.Errorf("wso2 token endpoint: got Basic credentials %q:%q, want them form-urlencoded before base64 (%q:%q)",
					rawID, rawSecret, url.QueryEscape(seedWSO2ID), url.QueryEscape(seedWSO2Secret))
				ok = false
			}
			id, err1 := url.QueryUnescape(rawID)
			secret, err2 := url.QueryUnescape(rawSecret)
			if err1 != nil || err2 != nil || id != seedWSO2ID || secret != seedWSO2Secret {
				rep.Errorf("wso2 token endpoint: got decoded Basic credentials %q:%q, want %q:%q", id, secret, seedWSO2ID, seedWSO2Secret)
				ok = false
			}
			f, fok := seedForm(rep, "wso2", r, "grant_type", "refresh_token", "scope")
			if got := f.Get("scope"); got != "PRODUCTION" {
				rep.Errorf("wso2 token endpoint: got scope %q, want %q", got, "PRODUCTION")
				ok = false
			}
			return f.Get("refresh_token"), ok && fok
		},
	}
}

// seedWSO2HTML answers an expired refresh token the way some WSO2 error
// paths do: an HTML page with no OAuth error code, which echoes the refresh
// token and the client secret.
func seedWSO2HTML(w http.ResponseWriter, rt string) {
	w.Header().Set("Content-Type", "text/html;charset=UTF-8")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `<!doctype html><html><head><title>Error</title><style>h1{color:red}</style></head>
<body><h1>HTTP Status 400 - Bad Request</h1><p>Refresh token %s is expired (client %s, secret %s).</p></body></html>`,
		rt, seedWSO2ID, seedWSO2Secret)
}

// 2BA (seed 002).
const (
	seed2BAID     = "2ba-partner"
	seed2BASecret = "2ba+secret/=&"
	seed2BAFirst  = "rt+/=&x" // needs URL encoding; the seed's sample does not encode it
)

// seed2BA is 2BA as seed 002 documents it: POST /OAuth/Token, a form with
// grant_type, refresh_token, client_id and client_secret; a new refresh
// token every time; an expired refresh token is HTTP 400 invalid_grant.
// Refresh tokens hold characters that must be URL-encoded, and the server
// compares what it parsed exactly; token_type is "bearer" as .NET OWIN
// servers send it.
func seed2BA() seedDialect {
	return seedDialect{
		name: "2ba", path: "/OAuth/Token", errStatus: http.StatusBadRequest,
		rotation: seedRotate, expiresIn: 3600, tokenType: "bearer",
		firstRT: seed2BAFirst, rtFormat: seed2BAFirst + "-%d", secret: seed2BASecret,
		challenge: `Bearer error="invalid_token"`,
		check: func(rep seedReporter, r *http.Request) (string, bool) {
			ok := seedNoAuthorization(rep, "2ba", r)
			f, fok := seedForm(rep, "2ba", r, "grant_type", "refresh_token", "client_id", "client_secret")
			if got := f.Get("client_id"); got != seed2BAID {
				rep.Errorf("2ba token endpoint: got client_id %q, want %q", got, seed2BAID)
				ok = false
			}
			if got := f.Get("client_secret"); got != seed2BASecret {
				rep.Errorf("2ba token endpoint: got client_secret %q, want %q", got, seed2BASecret)
				ok = false
			}
			return f.Get("refresh_token"), ok && fok
		},
	}
}

// Partner API (seed 003).
const seedPartnerID = "4711"

// seedPartner is the partner API as seed 003 documents it: POST
// /v1/auth/token with headers partnerId (an int32) and grantType:
// refresh_token, Content-Type application/json and the body
// {"refreshToken": "…"}; the response has access_token, refresh_token "if
// applicable" (rot), expires_in 86400 and token_type Bearer.
func seedPartner(rot seedRotation) seedDialect {
	return seedDialect{
		name: "partner", path: "/v1/auth/token", errStatus: http.StatusBadRequest,
		rotation: rot, expiresIn: 86400, tokenType: "Bearer",
		firstRT: "dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w", rtFormat: "dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi%d", secret: "", // no client secret: the partner id goes in a header
		challenge: `Bearer error="invalid_token"`,
		check: func(rep seedReporter, r *http.Request) (string, bool) {
			ok := seedNoAuthorization(rep, "partner", r)
			// HTTP field names are case-insensitive (RFC 9110 §5.1), so
			// partnerId and grantType are looked up as HTTP does; a
			// look-alike such as partner-id or grant_type is a deviation.
			want := map[string]string{"partnerId": seedPartnerID, "grantType": "refresh_token"}
			for name, v := range want {
				if got := r.Header.Values(name); len(got) != 1 || got[0] != v {
					rep.Errorf("partner token endpoint: got header %s %q, want [%q]", name, got, v)
					ok = false
				}
			}
			for k := range r.Header {
				squashed := strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k))
				if (squashed == "partnerid" || squashed == "granttype") && !strings.EqualFold(k, "partnerId") && !strings.EqualFold(k, "grantType") {
					rep.Errorf("partner token endpoint: got header %q, want partnerId / grantType", k)
					ok = false
				}
			}
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
				rep.Errorf("partner token endpoint: got Content-Type %q, want application/json", r.Header.Get("Content-Type"))
				return "", false
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				rep.Errorf("partner token endpoint: reading body: %v", err)
				return "", false
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil || m == nil {
				rep.Errorf("partner token endpoint: got body %q, want a JSON object", b)
				return "", false
			}
			if len(m) != 1 {
				rep.Errorf("partner token endpoint: got body %s, want exactly one member, refreshToken", b)
				ok = false
			}
			var rt string
			if err := json.Unmarshal(m["refreshToken"], &rt); err != nil || rt == "" {
				rep.Errorf("partner token endpoint: got body %s, want a string refreshToken", b)
				return "", false
			}
			return rt, ok
		},
	}
}

// seedPartnerRefusal answers like the partner API's documented errors.
func seedPartnerRefusal(code, desc string) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, _ string) { seedOAuthError(w, http.StatusBadRequest, code, desc) }
}

// Engine configurations, as a user of each seed API would write them.
// RefreshAttempts is 3 on purpose: a refusal misread as temporary would be
// retried, and the exact call counts would show it.

func seedGW2Config(s *seedServer) Config {
	return Config{
		OAuth2: &oauth2.Config{
			ClientID: seedGW2ID, ClientSecret: seedGW2Secret,
			Endpoint: oauth2.Endpoint{TokenURL: s.token.URL + "/api/token", AuthStyle: oauth2.AuthStyleInParams},
		},
		HTTPClient:      s.token.Client(),
		RefreshAttempts: 3,
	}
}

func seedGW2RawConfig(s *seedServer) Config {
	return Config{
		Endpoint: &FormEndpoint{
			TokenURL: s.token.URL + "/api/token", ClientID: seedGW2RawID, ClientSecret: seedGW2RawSecret,
			Auth: AuthBasicRaw, HTTPClient: s.token.Client(),
		},
		RefreshAttempts: 3,
	}
}

func seedWSO2Config(s *seedServer) Config {
	return Config{
		Endpoint: &FormEndpoint{
			TokenURL: s.token.URL + "/token", ClientID: seedWSO2ID, ClientSecret: seedWSO2Secret,
			Auth: AuthBasic, Scope: "PRODUCTION", HTTPClient: s.token.Client(),
		},
		RefreshAttempts: 3,
	}
}

func seed2BAConfig(s *seedServer) Config {
	return Config{
		OAuth2: &oauth2.Config{
			ClientID: seed2BAID, ClientSecret: seed2BASecret,
			Endpoint: oauth2.Endpoint{TokenURL: s.token.URL + "/OAuth/Token", AuthStyle: oauth2.AuthStyleInParams},
		},
		HTTPClient:      s.token.Client(),
		RefreshAttempts: 3,
	}
}

func seedPartnerConfig(s *seedServer) Config {
	return Config{
		Endpoint: &JSONEndpoint{
			URL: s.token.URL + "/v1/auth/token", Field: "refreshToken",
			Header:     http.Header{"partnerId": {seedPartnerID}, "grantType": {"refresh_token"}},
			HTTPClient: s.token.Client(),
		},
		RefreshAttempts: 3,
	}
}

// seedWantReauth returns a check that a request failed because the token
// endpoint refused the refresh token with the OAuth error code (and
// error_description desc, if not empty) under HTTP status.
func seedWantReauth(status int, code, desc string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, ErrReauthRequired) {
			t.Errorf("got error %v, want ErrReauthRequired", err)
		}
		var x *Error
		if !errors.As(err, &x) {
			t.Fatalf("got error %T %v, want a *refresh.Error", err, err)
		}
		if x.StatusCode != status || x.Code != code {
			t.Errorf("got HTTP %d %q, want HTTP %d %q", x.StatusCode, x.Code, status, code)
		}
		if desc != "" && x.Description != desc {
			t.Errorf("got description %q, want %q", x.Description, desc)
		}
		if x.Temporary() {
			t.Errorf("got a temporary error, want a permanent one: %v", err)
		}
	}
}

// seedLifecycle drives a Transport over s through the four phases:
// (1) a request with the stored token; (2) the API's 401, one refresh, the
// retry; (3) more refreshes, each storing the token the server issued and
// presenting only the current refresh token (0 reuses), and one 401 storm
// of concurrent requests cured by a single refresh; (4) the refresh token
// refused: the request fails, checked by refused, and 20 more requests
// make no token-endpoint call.
func seedLifecycle(t *testing.T, s *seedServer, c Config, refused func(*testing.T, error)) {
	t.Helper()
	ctx := context.Background()
	store := new(MemoryStore)
	if err := store.Save(ctx, DefaultKey, s.initial()); err != nil {
		t.Fatal(err)
	}
	c.Store = store
	var reauthHook atomic.Int64
	c.Hooks.ReauthRequired = func(string, error) { reauthHook.Add(1) }
	e, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	client := e.Client(s.api.Client())
	apiURL := s.api.URL + "/v1/items"

	stored := func() *oauth2.Token {
		t.Helper()
		tok, err := store.Load(ctx, DefaultKey)
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		return tok
	}
	var calls, n401 int64 // expected counters
	counts := func(step string) {
		t.Helper()
		if got := s.tokenCalls.Load(); got != calls {
			t.Errorf("%s: got %d token endpoint calls, want %d", step, got, calls)
		}
		if got := s.served401.Load(); got != n401 {
			t.Errorf("%s: got %d 401s from the API, want %d", step, got, n401)
		}
		if got := s.reuses.Load(); got != 0 {
			t.Errorf("%s: server saw %d refresh token reuses, want 0", step, got)
		}
	}
	mustGet := func(step string) {
		t.Helper()
		code, body, err := get(t, client, apiURL)
		if err != nil || code != http.StatusOK || body != "ok" {
			t.Fatalf("%s: got %d %q %v, want 200 %q", step, code, body, err, "ok")
		}
	}

	// (1) The stored token is used as it is.
	mustGet("normal request")
	counts("normal request")

	// (2) and (3): each 401 costs one refresh; the retry succeeds; the
	// store holds exactly what the server issued; the refresh token sent
	// is always the one stored before.
	for i := 1; i <= 4; i++ {
		step := fmt.Sprintf("refresh %d", i)
		before := stored()
		s.expireAccess()
		mustGet(step)
		calls, n401 = calls+1, n401+1
		counts(step)
		at, rt := s.current()
		got := stored()
		if got.AccessToken != at {
			t.Errorf("%s: got stored access token %q, want %q", step, got.AccessToken, at)
		}
		if got.RefreshToken != rt {
			t.Errorf("%s: got stored refresh token %q, want %q", step, got.RefreshToken, rt)
		}
		if p := s.received(); len(p) == 0 || p[len(p)-1] != before.RefreshToken {
			t.Errorf("%s: got refresh tokens sent %q, want the last to be the stored %q", step, p, before.RefreshToken)
		}
		if s.d.rotation != seedRotate && got.RefreshToken != s.d.firstRT {
			t.Errorf("%s: got stored refresh token %q, want the original %q kept", step, got.RefreshToken, s.d.firstRT)
		}
		mustGet(step + ", next request") // the new token, no 401
		counts(step + ", next request")
	}

	// A 401 storm (gw2.me: "only makes one single request to refresh").
	s.expireAccess()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if code, body, err := get(t, client, apiURL); err != nil || code != http.StatusOK {
				t.Errorf("401 storm: got %d %q %v, want 200", code, body, err)
			}
		})
	}
	wg.Wait()
	calls++
	if got := s.served401.Load() - n401; got < 1 || got > 8 {
		t.Errorf("401 storm: got %d 401s, want 1 to 8", got)
	}
	n401 = s.served401.Load()
	counts("401 storm")

	// (4) The refresh token is refused. It is sent once, the request
	// fails, and nothing more goes to the token endpoint.
	sentBefore := len(s.received())
	refusedRT := stored().RefreshToken
	s.expireRefresh(nil)
	s.expireAccess()
	_, _, err = get(t, client, apiURL)
	calls, n401 = calls+1, n401+1
	if err == nil {
		t.Fatal("refused refresh token: got no error")
	}
	refused(t, err)
	counts("refused refresh token")
	wantHook := int64(0)
	if errors.Is(err, ErrReauthRequired) {
		wantHook = 1
	}
	for i := range 20 {
		_, _, err := get(t, client, apiURL)
		if err == nil {
			t.Fatalf("request %d after the refusal: got no error", i)
		}
		refused(t, err)
	}
	counts("20 requests after the refusal")
	if got := s.received()[sentBefore:]; !slices.Equal(got, []string{refusedRT}) {
		t.Errorf("after the refusal: got refresh tokens sent %q, want once %q", got, refusedRT)
	}
	e.flushEvents(nil)
	if got := reauthHook.Load(); got != wantHook {
		t.Errorf("got %d ReauthRequired hook calls, want %d", got, wantHook)
	}
	for _, sec := range s.secrets() {
		if len(sec) >= 4 && strings.Contains(err.Error(), sec) {
			t.Errorf("error %q contains the secret %q", err, sec)
		}
	}
}

// TestSeedGW2 pins gw2.me (seed 000, PROVIDERS.md): credentials only in
// the form body (no Authorization header), single-use refresh tokens
// rotated on every refresh with 0 reuses, refresh only on the API's bare
// 401, one refresh for a storm of 401s, each refresh killing the previous
// access token, and invalid_grant arriving as HTTP 500 JSON classified by
// the body: ErrReauthRequired after exactly one call (with 3 attempts
// allowed), then no token-endpoint call. Its source returns the same
// refresh token, so that is accepted too. With AuthBasicRaw the client
// credentials go as raw (not URL-encoded) Basic and not in the body.
func TestSeedGW2(t *testing.T) {
	tests := []struct {
		name   string
		d      seedDialect
		config func(*seedServer) Config
	}{
		{"body credentials, rotating", seedGW2(seedRotate), seedGW2Config},
		{"body credentials, same refresh token returned", seedGW2(seedSameRT), seedGW2Config},
		{"raw Basic", seedGW2Raw(), seedGW2RawConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedServer(t, nil, tt.d)
			seedLifecycle(t, s, tt.config(s),
				seedWantReauth(http.StatusInternalServerError, "invalid_grant", "Refresh token has expired or is invalid."))
		})
	}
}

// TestSeedWSO2 pins WSO2 API Manager (seed 001): HTTP Basic with the
// client id and secret form-urlencoded before base64 (RFC 6749 §2.3.1), the
// body grant_type, refresh_token and scope=PRODUCTION without client
// credentials; RenewRefreshTokenForRefreshGrant true (rotation, 0 reuses)
// and false (the same refresh token returned, or none: the original is
// kept); invalid_grant as 400 JSON → ErrReauthRequired; and an HTML 400
// page for an expired refresh token → ErrReauthRequired, a permanent *Error
// with StatusCode 400, no Code and a BodySnippet free of markup and
// secrets, latched: no further call.
func TestSeedWSO2(t *testing.T) {
	wantHTML := func(s *seedServer) func(*testing.T, error) {
		return func(t *testing.T, err error) {
			t.Helper()
			var x *Error
			if !errors.As(err, &x) {
				t.Fatalf("got error %T %v, want a *refresh.Error", err, err)
			}
			if x.StatusCode != http.StatusBadRequest || x.Code != "" || x.Temporary() {
				t.Errorf("got HTTP %d, code %q, temporary %v; want HTTP 400, no code, permanent", x.StatusCode, x.Code, x.Temporary())
			}
			if errors.Is(err, ErrClientConfig) || !errors.Is(err, ErrReauthRequired) {
				t.Errorf("got %v for an expired refresh token, want ErrReauthRequired", err)
			}
			snip := x.BodySnippet
			if !strings.Contains(snip, "Bad Request") || !strings.Contains(snip, "is expired") {
				t.Errorf("got BodySnippet %q, want the page's text", snip)
			}
			if strings.ContainsAny(snip, "<>") || strings.Contains(snip, "color:red") {
				t.Errorf("got BodySnippet %q, want no markup or style", snip)
			}
			for _, sec := range s.secrets() {
				if strings.Contains(snip, sec) {
					t.Errorf("got BodySnippet %q, which contains the secret %q", snip, sec)
				}
			}
			if !strings.Contains(snip, "[redacted]") {
				t.Errorf("got BodySnippet %q, want the echoed secrets redacted", snip)
			}
			if strings.Contains(err.Error(), snip) {
				t.Errorf("got error string %q, want it without the body snippet", err)
			}
		}
	}
	tests := []struct {
		name string
		rot  seedRotation
		html bool
	}{
		{"renewal on", seedRotate, false},
		{"renewal off, same refresh token returned", seedSameRT, false},
		{"renewal off, refresh token omitted", seedOmitRT, false},
		{"renewal on, HTML 400 for an expired refresh token", seedRotate, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedServer(t, nil, seedWSO2(tt.rot))
			refused := seedWantReauth(http.StatusBadRequest, "invalid_grant", "Refresh token has expired or is invalid.")
			if tt.html {
				s.mu.Lock()
				s.refuse = seedWSO2HTML
				s.mu.Unlock()
				refused = wantHTML(s)
			}
			seedLifecycle(t, s, seedWSO2Config(s), refused)
		})
	}
}

// TestSeed2BA pins 2BA (seed 002): POST /OAuth/Token with client_id and
// client_secret in the form body (oauth2.AuthStyleInParams), a new refresh
// token every time (0 reuses), refresh tokens and a secret holding + / = &
// that the library must URL-encode (the server parses the form and
// compares exactly; the seed's own sample forgets to encode), token_type
// "bearer" sent back as "Bearer", and an expired refresh token answered
// HTTP 400 invalid_grant → ErrReauthRequired, then no call.
func TestSeed2BA(t *testing.T) {
	s := newSeedServer(t, nil, seed2BA())
	seedLifecycle(t, s, seed2BAConfig(s),
		seedWantReauth(http.StatusBadRequest, "invalid_grant", "Refresh token has expired or is invalid."))
	if got := s.received(); len(got) == 0 || got[0] != seed2BAFirst {
		t.Errorf("got refresh tokens %q, want the first to be %q", got, seed2BAFirst)
	}
}

// TestSeedPartnerAPI pins the partner API (seed 003): POST /v1/auth/token
// with headers partnerId: 4711 and grantType: refresh_token, a JSON body
// holding only refreshToken, a response with or without a new
// refresh_token ("if applicable": without one the original is kept),
// expires_in 86400; invalid_grant "Refresh token has expired or is
// invalid." (HTTP 400) → ErrReauthRequired; invalid_request "Missing
// refresh token." with no newer token in the store → ErrReauthRequired
// too, and the refresh token is never sent again.
func TestSeedPartnerAPI(t *testing.T) {
	const (
		grantDesc   = "Refresh token has expired or is invalid."
		requestDesc = "Missing refresh token."
	)
	tests := []struct {
		name  string
		rot   seedRotation
		code  string
		desc  string
		limit time.Duration // RefreshTimeout: bounds the wait for a peer's token after invalid_request
	}{
		{"new refresh token, invalid_grant", seedRotate, "invalid_grant", grantDesc, 0},
		{"no refresh token, invalid_grant", seedOmitRT, "invalid_grant", grantDesc, 0},
		{"new refresh token, invalid_request", seedRotate, "invalid_request", requestDesc, 250 * time.Millisecond},
		{"no refresh token, invalid_request", seedOmitRT, "invalid_request", requestDesc, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedServer(t, nil, seedPartner(tt.rot))
			s.mu.Lock()
			s.refuse = seedPartnerRefusal(tt.code, tt.desc)
			s.mu.Unlock()
			c := seedPartnerConfig(s)
			c.RefreshTimeout = tt.limit
			seedLifecycle(t, s, c, seedWantReauth(http.StatusBadRequest, tt.code, tt.desc))
		})
	}

	// expires_in 86400 gives the stored token a one-day expiry.
	t.Run("expires_in", func(t *testing.T) {
		s := newSeedServer(t, nil, seedPartner(seedRotate))
		e, err := New(seedPartnerConfig(s))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.SetToken(context.Background(), DefaultKey, s.initial()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		tok, err := e.Refresh(context.Background(), DefaultKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := tok.Expiry.Sub(start); d < 86390*time.Second || d > 86410*time.Second {
			t.Errorf("got expiry in %v, want 24h", d)
		}
		if tok.Type() != "Bearer" {
			t.Errorf("got token type %q, want %q", tok.Type(), "Bearer")
		}
	})
}

// seedRecorder collects a fake server's complaints.
type seedRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *seedRecorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *seedRecorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// TestSeedFakes shows that the fakes above can fail: each one reports a
// token request that strays from its seed's dialect in the way a careless
// client would, and each rotating fake counts the reuse of a spent
// refresh token sent by the library's own endpoint.
func TestSeedFakes(t *testing.T) {
	form := func(target string, v url.Values) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return r
	}
	jsonReq := func(target, body string, h http.Header) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		r.Header = h.Clone()
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	partnerHeader := http.Header{"Partnerid": {seedPartnerID}, "Granttype": {"refresh_token"}}
	strict := []struct {
		name string
		d    seedDialect
		req  func(base string) *http.Request
	}{
		{"gw2: Basic and body credentials at once", seedGW2(seedRotate), func(base string) *http.Request {
			r := form(base+"/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gw2-rt-0"},
				"client_id": {seedGW2ID}, "client_secret": {seedGW2Secret}})
			r.SetBasicAuth(seedGW2ID, seedGW2Secret)
			return r
		}},
		{"gw2: no client_secret", seedGW2(seedRotate), func(base string) *http.Request {
			return form(base+"/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gw2-rt-0"}, "client_id": {seedGW2ID}})
		}},
		{"gw2 raw Basic: URL-encoded credentials", seedGW2Raw(), func(base string) *http.Request {
			r := form(base+"/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gw2-rt-0"}})
			r.SetBasicAuth(url.QueryEscape(seedGW2RawID), url.QueryEscape(seedGW2RawSecret))
			return r
		}},
		{"gw2 raw Basic: credentials in the body too", seedGW2Raw(), func(base string) *http.Request {
			r := form(base+"/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"gw2-rt-0"},
				"client_id": {seedGW2RawID}, "client_secret": {seedGW2RawSecret}})
			r.SetBasicAuth(seedGW2RawID, seedGW2RawSecret)
			return r
		}},
		{"wso2: raw Basic credentials", seedWSO2(seedRotate), func(base string) *http.Request {
			r := form(base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"wso2-rt-0"}, "scope": {"PRODUCTION"}})
			r.SetBasicAuth(seedWSO2ID, seedWSO2Secret)
			return r
		}},
		{"wso2: client_secret in the body", seedWSO2(seedRotate), func(base string) *http.Request {
			r := form(base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"wso2-rt-0"}, "scope": {"PRODUCTION"},
				"client_secret": {seedWSO2Secret}})
			r.SetBasicAuth(url.QueryEscape(seedWSO2ID), url.QueryEscape(seedWSO2Secret))
			return r
		}},
		{"wso2: no scope", seedWSO2(seedRotate), func(base string) *http.Request {
			r := form(base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"wso2-rt-0"}})
			r.SetBasicAuth(url.QueryEscape(seedWSO2ID), url.QueryEscape(seedWSO2Secret))
			return r
		}},
		{"2ba: refresh token not URL-encoded", seed2BA(), func(base string) *http.Request {
			body := "grant_type=refresh_token&refresh_token=" + seed2BAFirst +
				"&client_id=" + url.QueryEscape(seed2BAID) + "&client_secret=" + url.QueryEscape(seed2BASecret)
			r, _ := http.NewRequest(http.MethodPost, base+"/OAuth/Token", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}},
		{"2ba: wrong path", seed2BA(), func(base string) *http.Request {
			return form(base+"/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {seed2BAFirst},
				"client_id": {seed2BAID}, "client_secret": {seed2BASecret}})
		}},
		{"partner: form body", seedPartner(seedRotate), func(base string) *http.Request {
			r := form(base+"/v1/auth/token", url.Values{"refreshToken": {"dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w"}})
			for k, v := range partnerHeader {
				r.Header[k] = v
			}
			return r
		}},
		{"partner: grant_type in the body", seedPartner(seedRotate), func(base string) *http.Request {
			return jsonReq(base+"/v1/auth/token", `{"refreshToken":"dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w","grant_type":"refresh_token"}`, partnerHeader)
		}},
		{"partner: grant_type header", seedPartner(seedRotate), func(base string) *http.Request {
			return jsonReq(base+"/v1/auth/token", `{"refreshToken":"dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w"}`,
				http.Header{"Partnerid": {seedPartnerID}, "Grant_type": {"refresh_token"}})
		}},
		{"partner: wrong partnerId", seedPartner(seedRotate), func(base string) *http.Request {
			return jsonReq(base+"/v1/auth/token", `{"refreshToken":"dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w"}`,
				http.Header{"Partnerid": {"4712"}, "Granttype": {"refresh_token"}})
		}},
		{"partner: refresh_token member", seedPartner(seedRotate), func(base string) *http.Request {
			return jsonReq(base+"/v1/auth/token", `{"refresh_token":"dGhpcyBpcyBhIHJlZnJlc2hUb2tlbi0w"}`, partnerHeader)
		}},
	}
	for _, tt := range strict {
		t.Run(tt.name, func(t *testing.T) {
			rec := new(seedRecorder)
			s := newSeedServer(t, rec, tt.d)
			resp, err := s.token.Client().Do(tt.req(s.token.URL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if len(rec.got()) == 0 {
				t.Errorf("got no complaint from the %s fake, want one", tt.d.name)
			}
			if resp.StatusCode == http.StatusOK {
				t.Errorf("got HTTP 200 from the %s fake, want a refusal", tt.d.name)
			}
		})
	}

	reuse := []struct {
		name   string
		d      seedDialect
		config func(*seedServer) Config
	}{
		{"gw2", seedGW2(seedRotate), seedGW2Config},
		{"gw2 raw Basic", seedGW2Raw(), seedGW2RawConfig},
		{"wso2", seedWSO2(seedRotate), seedWSO2Config},
		{"2ba", seed2BA(), seed2BAConfig},
		{"partner", seedPartner(seedRotate), seedPartnerConfig},
	}
	for _, tt := range reuse {
		t.Run("reuse/"+tt.name, func(t *testing.T) {
			s := newSeedServer(t, nil, tt.d)
			e, err := New(tt.config(s))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if _, err := e.endpoint.Refresh(ctx, s.initial()); err != nil {
				t.Fatalf("first refresh: %v", err)
			}
			_, err = e.endpoint.Refresh(ctx, s.initial())
			var x *Error
			if !errors.As(err, &x) || x.Code != "invalid_grant" {
				t.Errorf("reuse: got %v, want invalid_grant", err)
			}
			if got := s.reuses.Load(); got != 1 {
				t.Errorf("got %d reuses counted, want 1", got)
			}
			if at, rt := s.current(); at != "" || rt != "" {
				t.Errorf("after the reuse: got tokens %q, %q still valid, want the family revoked", at, rt)
			}
		})
	}
}
