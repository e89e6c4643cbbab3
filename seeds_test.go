package refresh

// Tests that speak the dialects of the four seed APIs (/work/shared/seeds,
// PROVIDERS.md) exactly as documented, over real HTTP, and drive the
// Transport through a normal request, a 401 that is cured by one refresh, a
// series of rotations, and a refused refresh token. The server is
// refreshtest.Server with the options of each dialect (Strict and the
// others, whose checks refreshtest's TestSeedDialects shows can fail); a
// token request it refuses for anything but the refusal a test provokes
// fails the test.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// gw2.me (seed 000).
const (
	seedGW2ID     = "gw2-client-7f3a"
	seedGW2Secret = "gw2 s3cret+/&=" // needs form encoding in the body
	// The raw-Basic variant: gw2.me does not URL-decode Basic credentials.
	seedGW2RawID     = "my client"
	seedGW2RawSecret = "s+cr&t="
)

// The description the seeds document for an expired refresh token.
const seedExpired = "Refresh token has expired or is invalid."

// seedGW2 is gw2.me as seed 000 documents it: POST /api/token, a form with
// exactly grant_type, refresh_token, client_id and client_secret; a request
// that also carries an Authorization header is refused; every OAuth error is
// an HTTP 500 with a JSON body; one access token per client and user, so
// each refresh kills the previous one; a bare 401 from the API. rot is
// RotateAlways or, as its source does, RotateSame.
func seedGW2(rot refreshtest.Rotation) refreshtest.Options {
	return refreshtest.Options{
		TokenPath: "/api/token", Errors: refreshtest.Errors500, Strict: true, Rotation: rot,
		ClientID: seedGW2ID, ClientSecret: seedGW2Secret, Auth: refreshtest.AuthBody,
		Lifetime: 604800 * time.Second, TokenType: "Bearer", OneAccessTokenPerGrant: true, BareUnauthorized: true,
	}
}

// seedGW2Raw is a gw2-like server that takes client credentials only as
// raw HTTP Basic (not URL-decoded) and a body without them.
func seedGW2Raw() refreshtest.Options {
	o := seedGW2(refreshtest.RotateAlways)
	o.ClientID, o.ClientSecret, o.Auth = seedGW2RawID, seedGW2RawSecret, refreshtest.AuthBasicRaw
	return o
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
// are 400 JSON. rot is RenewRefreshTokenForRefreshGrant: RotateAlways (true,
// the default) or RotateSame / RotateNever (false).
func seedWSO2(rot refreshtest.Rotation) refreshtest.Options {
	return refreshtest.Options{
		TokenPath: "/token", Strict: true, Rotation: rot, Scope: "PRODUCTION",
		ClientID: seedWSO2ID, ClientSecret: seedWSO2Secret, Auth: refreshtest.AuthBasic,
		Lifetime: time.Hour, TokenType: "Bearer", OneAccessTokenPerGrant: true,
	}
}

// 2BA (seed 002).
const (
	seed2BAID     = "2ba-partner"
	seed2BASecret = "2ba+secret/=&"
	seed2BASuffix = "+/=&x" // its refresh tokens need URL encoding; the seed's sample does not encode them
)

// seed2BA is 2BA as seed 002 documents it: POST /OAuth/Token, a form with
// grant_type, refresh_token, client_id and client_secret; a new refresh
// token every time; an expired refresh token is HTTP 400 invalid_grant.
// Refresh tokens hold characters that must be URL-encoded, and the server
// compares what it parsed exactly; token_type is "bearer" as .NET OWIN
// servers send it.
func seed2BA() refreshtest.Options {
	return refreshtest.Options{
		TokenPath: "/OAuth/Token", Strict: true, ClientID: seed2BAID, ClientSecret: seed2BASecret, Auth: refreshtest.AuthBody,
		RefreshTokenSuffix: seed2BASuffix, Lifetime: time.Hour, TokenType: "bearer", OneAccessTokenPerGrant: true,
	}
}

// Partner API (seed 003).
const seedPartnerID = "4711"

// seedPartner is the partner API as seed 003 documents it: POST
// /v1/auth/token with headers partnerId (an int32) and grantType:
// refresh_token, Content-Type application/json and the body
// {"refreshToken": "…"}, nothing else; the response has access_token,
// refresh_token "if applicable" (rot: RotateAlways or RotateNever),
// expires_in 86400 and token_type Bearer.
func seedPartner(rot refreshtest.Rotation) refreshtest.Options {
	return refreshtest.Options{
		TokenPath: "/v1/auth/token", Strict: true, Rotation: rot,
		JSON: &refreshtest.JSONDialect{
			Field:  "refreshToken",
			Header: http.Header{"partnerId": {seedPartnerID}, "grantType": {"refresh_token"}},
		},
		Lifetime: 24 * time.Hour, TokenType: "Bearer", OneAccessTokenPerGrant: true,
	}
}

// Engine configurations, as a user of each seed API would write them.
// RefreshAttempts is 3 on purpose: a refusal misread as temporary would be
// retried, and the exact call counts would show it.

func seedGW2Config(s *testServer) Config {
	return Config{
		OAuth2: &oauth2.Config{
			ClientID: seedGW2ID, ClientSecret: seedGW2Secret,
			Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		RefreshAttempts: 3,
	}
}

func seedGW2RawConfig(s *testServer) Config {
	return Config{
		Endpoint: &FormEndpoint{
			TokenURL: s.TokenURL, ClientID: seedGW2RawID, ClientSecret: seedGW2RawSecret,
			Auth: AuthBasicRaw,
		},
		RefreshAttempts: 3,
	}
}

func seedWSO2Config(s *testServer) Config {
	return Config{
		Endpoint: &FormEndpoint{
			TokenURL: s.TokenURL, ClientID: seedWSO2ID, ClientSecret: seedWSO2Secret,
			Auth: AuthBasic, Scope: "PRODUCTION",
		},
		RefreshAttempts: 3,
	}
}

func seed2BAConfig(s *testServer) Config {
	return Config{
		OAuth2: &oauth2.Config{
			ClientID: seed2BAID, ClientSecret: seed2BASecret,
			Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
		},
		RefreshAttempts: 3,
	}
}

func seedPartnerConfig(s *testServer) Config {
	return Config{
		Endpoint: &JSONEndpoint{
			URL: s.TokenURL, Field: "refreshToken",
			Header: http.Header{"partnerId": {seedPartnerID}, "grantType": {"refresh_token"}},
		},
		RefreshAttempts: 3,
	}
}

// newSeedServer starts a server speaking o's dialect, which refuses nothing
// until a test says so.
func newSeedServer(t *testing.T, o refreshtest.Options) *testServer {
	t.Helper()
	s := newServer(t, o)
	s.expectRefusals()
	return s
}

// seedWantReauth returns a check that a request failed because the token
// endpoint refused the refresh token with the OAuth error code (and
// error_description desc, if not empty) under HTTP status.
func seedWantReauth(status int, code, desc string) func(*testing.T, error, []string) {
	return func(t *testing.T, err error, _ []string) {
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

// seedRefusal is how a test makes the server refuse the refresh token in
// phase (4) of seedLifecycle: RefuseRefreshTokens(code, desc).
type seedRefusal struct{ code, desc string }

// seedLifecycle drives a Transport over s through the four phases:
// (1) a request with the stored token; (2) the API's 401, one refresh, the
// retry; (3) more refreshes, each storing the token the server issued and
// presenting only the current refresh token (0 reuses), and one 401 storm
// of concurrent requests cured by a single refresh; (4) the refresh token
// refused as refusal says: the request fails, checked by refused (given
// every token the server issued and the client secret), and 20 more
// requests make no token-endpoint call. secret is the client secret ("" for
// none), which no error may show.
func seedLifecycle(t *testing.T, s *testServer, c Config, secret string, refusal seedRefusal, refused func(*testing.T, error, []string)) {
	t.Helper()
	ctx := context.Background()
	login := s.logIn()
	store := new(MemoryStore)
	if err := store.Save(ctx, DefaultKey, login); err != nil {
		t.Fatal(err)
	}
	c.Store = store
	var reauthHook atomic.Int64
	c.Hooks.ReauthRequired = func(string, error) { reauthHook.Add(1) }
	e, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	client := e.Client(nil)
	apiURL := s.URL + "/v1/items"

	seen := []*oauth2.Token{login} // every token the server issued, for the secrets check
	stored := func() *oauth2.Token {
		t.Helper()
		tok, err := store.Load(ctx, DefaultKey)
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		seen = append(seen, tok)
		return tok
	}
	var calls, n401 int // expected counters
	counts := func(step string) {
		t.Helper()
		st := s.Stats()
		if got := st.TokenRequests; got != calls {
			t.Errorf("%s: got %d token endpoint calls, want %d", step, got, calls)
		}
		if got := st.Served401; got != n401 {
			t.Errorf("%s: got %d 401s from the API, want %d", step, got, n401)
		}
		if got := st.Reuses; got != 0 {
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
	// presented returns the refresh tokens the token endpoint received,
	// by grant and pair number, as "grant/pair".
	presented := func() []string {
		var p []string
		for _, ev := range s.tokenEvents() {
			p = append(p, fmt.Sprintf("%d/%d", ev.Grant, ev.Pair))
		}
		return p
	}
	named := func(rt string) string {
		g, p := pairOf(rt)
		return fmt.Sprintf("%d/%d", g, p)
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
		s.RevokeAccessTokens()
		mustGet(step)
		calls, n401 = calls+1, n401+1
		counts(step)
		cur := s.Current(login.RefreshToken)
		got := stored()
		if got.AccessToken != cur.AccessToken {
			t.Errorf("%s: got stored access token %q, want %q", step, got.AccessToken, cur.AccessToken)
		}
		if got.RefreshToken != cur.RefreshToken {
			t.Errorf("%s: got stored refresh token %q, want %q", step, got.RefreshToken, cur.RefreshToken)
		}
		if p := presented(); len(p) == 0 || p[len(p)-1] != named(before.RefreshToken) {
			t.Errorf("%s: got refresh tokens sent %q, want the last to be the stored %q (%s)", step, p, named(before.RefreshToken), before.RefreshToken)
		}
		if s.opts.Rotation != refreshtest.RotateAlways && got.RefreshToken != login.RefreshToken {
			t.Errorf("%s: got stored refresh token %q, want the original %q kept", step, got.RefreshToken, login.RefreshToken)
		}
		mustGet(step + ", next request") // the new token, no 401
		counts(step + ", next request")
	}

	// A 401 storm (gw2.me: "only makes one single request to refresh").
	s.RevokeAccessTokens()
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
	if got := s.Stats().Served401 - n401; got < 1 || got > 8 {
		t.Errorf("401 storm: got %d 401s, want 1 to 8", got)
	}
	n401 = s.Stats().Served401
	counts("401 storm")

	// (4) The refresh token is refused. It is sent once, the request
	// fails, and nothing more goes to the token endpoint.
	sentBefore := len(presented())
	refusedRT := stored().RefreshToken
	secrets := []string{secret} // what no error may show: all tokens are known now
	for _, tok := range seen {
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
	}
	s.expectRefusals(refusal.code)
	s.RefuseRefreshTokens(refusal.code, refusal.desc)
	s.RevokeAccessTokens()
	_, _, err = get(t, client, apiURL)
	calls, n401 = calls+1, n401+1
	if err == nil {
		t.Fatal("refused refresh token: got no error")
	}
	refused(t, err, secrets)
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
		refused(t, err, secrets)
	}
	counts("20 requests after the refusal")
	if got := presented()[sentBefore:]; len(got) != 1 || got[0] != named(refusedRT) {
		t.Errorf("after the refusal: got refresh tokens sent %q, want once %q (%s)", got, named(refusedRT), refusedRT)
	}
	FlushEvents(e) // hooks run on the event goroutine
	if got := reauthHook.Load(); got != wantHook {
		t.Errorf("got %d ReauthRequired hook calls, want %d", got, wantHook)
	}
	for _, sec := range secrets {
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
		opts   refreshtest.Options
		config func(*testServer) Config
		secret string
	}{
		{"body credentials, rotating", seedGW2(refreshtest.RotateAlways), seedGW2Config, seedGW2Secret},
		{"body credentials, same refresh token returned", seedGW2(refreshtest.RotateSame), seedGW2Config, seedGW2Secret},
		{"raw Basic", seedGW2Raw(), seedGW2RawConfig, seedGW2RawSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedServer(t, tt.opts)
			seedLifecycle(t, s, tt.config(s), tt.secret, seedRefusal{"invalid_grant", seedExpired},
				seedWantReauth(http.StatusInternalServerError, "invalid_grant", seedExpired))
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
	wantHTML := func(t *testing.T, err error, secrets []string) {
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
		// The page echoes the refresh token and the client secret.
		for _, sec := range secrets {
			if sec != "" && strings.Contains(snip, sec) {
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
	refused := seedWantReauth(http.StatusBadRequest, "invalid_grant", seedExpired)
	tests := []struct {
		name string
		rot  refreshtest.Rotation
		html bool
	}{
		{"renewal on", refreshtest.RotateAlways, false},
		{"renewal off, same refresh token returned", refreshtest.RotateSame, false},
		{"renewal off, refresh token omitted", refreshtest.RotateNever, false},
		{"renewal on, HTML 400 for an expired refresh token", refreshtest.RotateAlways, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := seedWSO2(tt.rot)
			refusal, check := seedRefusal{"invalid_grant", seedExpired}, refused
			if tt.html {
				o.Errors = refreshtest.ErrorsHTML // the page quotes the token and the client's credentials
				refusal.desc = "Refresh token is expired."
			}
			if tt.html {
				check = wantHTML
			}
			s := newSeedServer(t, o)
			seedLifecycle(t, s, seedWSO2Config(s), seedWSO2Secret, refusal, check)
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
	s := newSeedServer(t, seed2BA())
	seedLifecycle(t, s, seed2BAConfig(s), seed2BASecret, seedRefusal{"invalid_grant", seedExpired},
		seedWantReauth(http.StatusBadRequest, "invalid_grant", seedExpired))
	first := s.login.RefreshToken
	if !strings.HasSuffix(first, seed2BASuffix) {
		t.Fatalf("the login's refresh token %q does not end in %q", first, seed2BASuffix)
	}
	if evs := s.tokenEvents(); len(evs) == 0 || evs[0].Kind != refreshtest.TokenGranted || evs[0].Grant != 1 || evs[0].Pair != 0 {
		t.Errorf("got token requests %+v, want the first to be granted for %q, as sent", evs, first)
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
	const requestDesc = "Missing refresh token."
	tests := []struct {
		name  string
		rot   refreshtest.Rotation
		code  string
		desc  string
		limit time.Duration // RefreshTimeout: bounds the wait for a peer's token after invalid_request
	}{
		{"new refresh token, invalid_grant", refreshtest.RotateAlways, "invalid_grant", seedExpired, 0},
		{"no refresh token, invalid_grant", refreshtest.RotateNever, "invalid_grant", seedExpired, 0},
		{"new refresh token, invalid_request", refreshtest.RotateAlways, "invalid_request", requestDesc, 250 * time.Millisecond},
		{"no refresh token, invalid_request", refreshtest.RotateNever, "invalid_request", requestDesc, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeedServer(t, seedPartner(tt.rot))
			c := seedPartnerConfig(s)
			c.RefreshTimeout = tt.limit
			seedLifecycle(t, s, c, "", seedRefusal{tt.code, tt.desc}, seedWantReauth(http.StatusBadRequest, tt.code, tt.desc))
		})
	}

	// expires_in 86400 gives the stored token a one-day expiry.
	t.Run("expires_in", func(t *testing.T) {
		s := newSeedServer(t, seedPartner(refreshtest.RotateAlways))
		e, err := New(seedPartnerConfig(s))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.SetToken(context.Background(), DefaultKey, s.logIn()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		tok, err := e.Refresh(context.Background(), DefaultKey, nil)
		end := time.Now()
		if err != nil {
			t.Fatal(err)
		}
		// The expiry is the answer's arrival plus 24 h, to the second.
		const day = 86400 * time.Second
		if tok.Expiry.Before(start.Add(day-time.Second)) || tok.Expiry.After(end.Add(day+time.Second)) {
			t.Errorf("got expiry in %v, want 24h", tok.Expiry.Sub(start))
		}
		if tok.Type() != "Bearer" {
			t.Errorf("got token type %q, want %q", tok.Type(), "Bearer")
		}
	})
}
