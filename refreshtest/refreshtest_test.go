package refreshtest_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

func TestToken(t *testing.T) {
	c := newClock()
	srv := newServer(t, refreshtest.Options{Now: c.Now})
	tok := srv.Token()
	if !strings.HasPrefix(tok.AccessToken, "at-1-0-") || !strings.HasPrefix(tok.RefreshToken, "rt-1-0-") {
		t.Errorf("got tokens %q and %q, want at-1-0-… and rt-1-0-…", tok.AccessToken, tok.RefreshToken)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || !tok.Expiry.Equal(c.Now().Add(time.Hour)) {
		t.Errorf("got type %q, expires_in %d, expiry %v; want Bearer, 3600, an hour from now", tok.TokenType, tok.ExpiresIn, tok.Expiry)
	}
	tok2 := srv.Token()
	if !strings.HasPrefix(tok2.AccessToken, "at-2-0-") {
		t.Errorf("second login: got %q, want grant 2", tok2.AccessToken)
	}
	if again := newServer(t, refreshtest.Options{}).Token(); again.AccessToken == tok.AccessToken {
		t.Errorf("two servers issued the same token %q; values must carry a random part", tok.AccessToken)
	}
	if got := srv.Stats(); got != (refreshtest.Stats{Grants: 2}) {
		t.Errorf("got %+v, want 2 grants and nothing else", got)
	}
}

func TestAPI(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	other := srv.Token()

	r := api(t, srv, http.MethodGet, "/v1/me", tok.AccessToken, "")
	if r.status != http.StatusOK || r.body != "ok" || r.header.Get(refreshtest.GrantHeader) != "1" {
		t.Errorf("GET: got %d %q grant %q, want 200 ok grant 1", r.status, r.body, r.header.Get(refreshtest.GrantHeader))
	}
	r = api(t, srv, http.MethodPost, "/v1/items", other.AccessToken, `{"name":"x"}`)
	if r.status != http.StatusOK || r.body != `{"name":"x"}` || r.header.Get(refreshtest.GrantHeader) != "2" {
		t.Errorf("POST: got %d %q grant %q, want 200 with the body echoed, grant 2", r.status, r.body, r.header.Get(refreshtest.GrantHeader))
	}
	r = api(t, srv, http.MethodPut, "/", tok.AccessToken, "")
	if r.status != http.StatusOK || r.body != "" {
		t.Errorf("PUT without a body: got %d %q, want 200 and an empty body", r.status, r.body)
	}

	// The scheme is case-insensitive (RFC 7235 §2.1).
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
	req.Header.Set("Authorization", "bEaReR "+tok.AccessToken)
	if r := do(t, nil, req); r.status != http.StatusOK {
		t.Errorf("scheme bEaReR: got %d, want 200", r.status)
	}

	for _, tc := range []struct {
		name   string
		path   string
		header []string
		status int
		chall  string
	}{
		{"no header", "/x", nil, 401, `Bearer realm="refreshtest"`},
		{"basic", "/x", []string{"Basic dTpw"}, 401, `Bearer realm="refreshtest"`},
		{"unknown token", "/x", []string{"Bearer at-1-0-guess"}, 401, `Bearer realm="refreshtest", error="invalid_token"`},
		{"empty token", "/x", []string{"Bearer "}, 401, `Bearer realm="refreshtest", error="invalid_token"`},
		{"two headers", "/x", []string{"Bearer " + tok.AccessToken, "Bearer " + tok.AccessToken}, 400, `Bearer realm="refreshtest", error="invalid_request"`},
		{"scope needed, valid token", refreshtest.ScopeNeededPath, []string{"Bearer " + tok.AccessToken}, 403, `Bearer realm="refreshtest", error="insufficient_scope"`},
		{"scope needed, bad token", refreshtest.ScopeNeededPath, []string{"Bearer nope"}, 403, `Bearer realm="refreshtest", error="insufficient_scope"`},
		{"scope needed, no token", refreshtest.ScopeNeededPath, nil, 401, `Bearer realm="refreshtest"`},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		req.Header["Authorization"] = tc.header
		r := do(t, nil, req)
		if r.status != tc.status || r.header.Get("WWW-Authenticate") != tc.chall {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, r.status, r.header.Get("WWW-Authenticate"), tc.status, tc.chall)
		}
		if r.header.Get(refreshtest.GrantHeader) != "" {
			t.Errorf("%s: got %s header on a refusal", tc.name, refreshtest.GrantHeader)
		}
	}

	want := refreshtest.Stats{Grants: 2, APIRequests: 12, Served200: 4, Served401: 5, Served403: 2, Served400: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRefreshRotates(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	r := postRefresh(t, srv, tok.RefreshToken)
	if r.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("got Content-Type %q, Cache-Control %q; want JSON, no-store", ct, r.header.Get("Cache-Control"))
	}
	at, rt := r.str("access_token"), r.str("refresh_token")
	if !strings.HasPrefix(at, "at-1-1-") || !strings.HasPrefix(rt, "rt-1-1-") || r.str("token_type") != "bearer" || r.fields["expires_in"] != 3600.0 {
		t.Errorf("got %s, want at-1-1-…, rt-1-1-…, bearer, 3600", r.body)
	}
	if _, ok := r.fields["scope"]; ok {
		t.Errorf("got a scope in %s, want none", r.body)
	}
	// Both access tokens live until they expire.
	if apiStatus(t, srv, tok.AccessToken) != 200 || apiStatus(t, srv, at) != 200 {
		t.Errorf("old and new access token: want both accepted")
	}
	_, rt2 := mustRefresh(t, srv, rt)
	want := refreshtest.Stats{Grants: 1, TokenRequests: 2, Refreshes: 2, Rotations: 2, APIRequests: 2, Served200: 2}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if !strings.HasPrefix(rt2, "rt-1-2-") {
		t.Errorf("got %q, want rt-1-2-…", rt2)
	}
}

func TestReuseRevokesFamily(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	bystander := srv.Token()
	at1, rt1 := mustRefresh(t, srv, tok.RefreshToken)

	r := postRefresh(t, srv, tok.RefreshToken) // reuse
	if r.status != http.StatusBadRequest || r.code() != "invalid_grant" {
		t.Fatalf("reuse: got %d %s, want 400 invalid_grant", r.status, r.body)
	}
	// The newest tokens of the grant died with it…
	if r := postRefresh(t, srv, rt1); r.code() != "invalid_grant" {
		t.Errorf("newest refresh token after the reuse: got %d %s, want invalid_grant", r.status, r.body)
	}
	if s := apiStatus(t, srv, at1); s != 401 {
		t.Errorf("newest access token after the reuse: got %d, want 401", s)
	}
	// …and the old one is still spent: another reuse, but no second revocation.
	postRefresh(t, srv, tok.RefreshToken)
	// Other grants are untouched.
	if s := apiStatus(t, srv, bystander.AccessToken); s != 200 {
		t.Errorf("other grant's access token: got %d, want 200", s)
	}
	mustRefresh(t, srv, bystander.RefreshToken)

	want := refreshtest.Stats{Grants: 2, TokenRequests: 5, Refreshes: 2, Rotations: 2, Reuses: 2, FamiliesRevoked: 1,
		InvalidGrant: 3, APIRequests: 2, Served200: 1, Served401: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestLenientReuse(t *testing.T) {
	srv := newServer(t, refreshtest.Options{LenientReuse: true})
	tok := srv.Token()
	at1, rt1 := mustRefresh(t, srv, tok.RefreshToken)
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("reuse: got %d %s, want invalid_grant", r.status, r.body)
	}
	if s := apiStatus(t, srv, at1); s != 200 {
		t.Errorf("newest access token: got %d, want 200", s)
	}
	mustRefresh(t, srv, rt1)
	if got := srv.Stats(); got.Reuses != 1 || got.FamiliesRevoked != 0 || got.Refreshes != 2 {
		t.Errorf("got %+v, want 1 reuse, no revocation, 2 refreshes", got)
	}
}

func TestRotateNever(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateNever})
	tok := srv.Token()
	for i := 1; i <= 3; i++ {
		r := postRefresh(t, srv, tok.RefreshToken)
		if r.status != 200 || !strings.HasPrefix(r.str("access_token"), fmt.Sprintf("at-1-%d-", i)) {
			t.Fatalf("refresh %d: got %d %s, want 200 and at-1-%d-…", i, r.status, r.body, i)
		}
		if _, ok := r.fields["refresh_token"]; ok {
			t.Errorf("refresh %d: got a refresh_token in %s, want none (keep the old one)", i, r.body)
		}
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 3, Refreshes: 3}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRotateGrace(t *testing.T) {
	c := newClock()
	srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateGrace, Grace: 10 * time.Second, Now: c.Now})

	// A reuse within the grace gets the same answer again.
	tok := srv.Token()
	first := postRefresh(t, srv, tok.RefreshToken)
	c.Advance(9 * time.Second)
	again := postRefresh(t, srv, tok.RefreshToken)
	if again.status != 200 || again.body != first.body {
		t.Errorf("reuse within the grace: got %d %s, want the first answer %s", again.status, again.body, first.body)
	}
	if s := apiStatus(t, srv, again.str("access_token")); s != 200 {
		t.Errorf("replayed access token: got %d, want 200", s)
	}
	// After the grace it is a reuse, and the family goes.
	c.Advance(time.Second)
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("reuse after the grace: got %d %s, want invalid_grant", r.status, r.body)
	}
	if r := postRefresh(t, srv, first.str("refresh_token")); r.code() != "invalid_grant" {
		t.Errorf("successor after the revocation: got %d %s, want invalid_grant", r.status, r.body)
	}

	// Once the successor is spent, the grace no longer applies.
	tok = srv.Token()
	_, rt1 := mustRefresh(t, srv, tok.RefreshToken)
	mustRefresh(t, srv, rt1)
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("reuse after the successor was spent: got %d %s, want invalid_grant", r.status, r.body)
	}

	want := refreshtest.Stats{Grants: 2, TokenRequests: 7, Refreshes: 4, Rotations: 3, Reuses: 3, FamiliesRevoked: 2,
		InvalidGrant: 3, APIRequests: 1, Served200: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRotateGraceNew(t *testing.T) {
	c := newClock()
	srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateGraceNew, Now: c.Now}) // Grace 30 s
	tok := srv.Token()
	at1, rt1 := mustRefresh(t, srv, tok.RefreshToken)
	c.Advance(29 * time.Second)
	at2, rt2 := mustRefresh(t, srv, tok.RefreshToken)
	if at2 == at1 || rt2 == rt1 {
		t.Errorf("reuse within the grace: got the same pair again, want a new one")
	}
	for _, at := range []string{at1, at2} {
		if s := apiStatus(t, srv, at); s != 200 {
			t.Errorf("access token %s: got %d, want 200", at, s)
		}
	}
	mustRefresh(t, srv, rt1)
	mustRefresh(t, srv, rt2)
	c.Advance(time.Second)
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("reuse after the grace: got %d %s, want invalid_grant", r.status, r.body)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 5, Refreshes: 4, Rotations: 4, Reuses: 2, FamiliesRevoked: 1,
		InvalidGrant: 1, APIRequests: 2, Served200: 2}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestOneAccessTokenPerGrant(t *testing.T) {
	srv := newServer(t, refreshtest.Options{OneAccessTokenPerGrant: true})
	tok := srv.Token()
	other := srv.Token()
	at1, _ := mustRefresh(t, srv, tok.RefreshToken)
	if s := apiStatus(t, srv, tok.AccessToken); s != 401 {
		t.Errorf("access token before the refresh: got %d, want 401", s)
	}
	if s := apiStatus(t, srv, at1); s != 200 {
		t.Errorf("access token of the refresh: got %d, want 200", s)
	}
	if s := apiStatus(t, srv, other.AccessToken); s != 200 {
		t.Errorf("another grant's access token: got %d, want 200", s)
	}
}

func TestExpiry(t *testing.T) {
	c := newClock()
	srv := newServer(t, refreshtest.Options{Lifetime: 1500 * time.Millisecond, RefreshLifetime: time.Minute, Now: c.Now})
	tok := srv.Token()
	if tok.ExpiresIn != 2 {
		t.Errorf("a 1.5 s lifetime: got expires_in %d, want 2 (rounded up)", tok.ExpiresIn)
	}
	c.Advance(1999 * time.Millisecond)
	if s := apiStatus(t, srv, tok.AccessToken); s != 200 {
		t.Errorf("before expiry: got %d, want 200", s)
	}
	c.Advance(time.Millisecond)
	r := api(t, srv, http.MethodGet, "/", tok.AccessToken, "")
	if r.status != 401 || r.header.Get("WWW-Authenticate") != `Bearer realm="refreshtest", error="invalid_token"` || !strings.Contains(r.body, "expired") {
		t.Errorf("at expiry: got %d %q %q, want 401 invalid_token, expired", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
	_, rt := mustRefresh(t, srv, tok.RefreshToken)
	c.Advance(time.Minute)
	if r := postRefresh(t, srv, rt); r.status != 400 || r.code() != "invalid_grant" || !strings.Contains(r.str("error_description"), "expired") {
		t.Errorf("expired refresh token: got %d %s, want 400 invalid_grant", r.status, r.body)
	}

	forever := newServer(t, refreshtest.Options{Lifetime: -1, Now: c.Now})
	tok = forever.Token()
	if !tok.Expiry.IsZero() || tok.ExpiresIn != 0 {
		t.Errorf("negative Lifetime: got expiry %v, expires_in %d, want none", tok.Expiry, tok.ExpiresIn)
	}
	r = postRefresh(t, forever, tok.RefreshToken)
	if _, ok := r.fields["expires_in"]; ok || r.status != 200 {
		t.Errorf("negative Lifetime: got %d %s, want 200 without expires_in", r.status, r.body)
	}
	c.Advance(1000 * time.Hour)
	if s := apiStatus(t, forever, tok.AccessToken); s != 200 {
		t.Errorf("negative Lifetime, much later: got %d, want 200", s)
	}
}

func TestRevoke(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	a, b := srv.Token(), srv.Token()

	srv.RevokeAccessTokens()
	for _, at := range []string{a.AccessToken, b.AccessToken} {
		if s := apiStatus(t, srv, at); s != 401 {
			t.Errorf("after RevokeAccessTokens: got %d, want 401", s)
		}
	}
	atA, rtA := mustRefresh(t, srv, a.RefreshToken)
	atB, rtB := mustRefresh(t, srv, b.RefreshToken)
	if apiStatus(t, srv, atA) != 200 || apiStatus(t, srv, atB) != 200 {
		t.Errorf("after one refresh each: want 200")
	}

	if !srv.Revoke(atA) {
		t.Errorf("Revoke(access token): got false, want true")
	}
	if apiStatus(t, srv, atA) != 401 || apiStatus(t, srv, atB) != 200 {
		t.Errorf("after Revoke(access token): want only that token rejected")
	}
	if !srv.Revoke(rtB) {
		t.Errorf("Revoke(refresh token): got false, want true")
	}
	if apiStatus(t, srv, atB) != 401 || postRefresh(t, srv, rtB).code() != "invalid_grant" {
		t.Errorf("after Revoke(refresh token): want its grant revoked")
	}
	if srv.Revoke("at-1-0-unknown") {
		t.Errorf("Revoke(unknown): got true, want false")
	}

	srv.RevokeGrants()
	if r := postRefresh(t, srv, rtA); r.code() != "invalid_grant" {
		t.Errorf("after RevokeGrants: got %d %s, want invalid_grant", r.status, r.body)
	}
	c := srv.Token() // a new login works
	if apiStatus(t, srv, c.AccessToken) != 200 {
		t.Errorf("new login after RevokeGrants: want 200")
	}
	mustRefresh(t, srv, c.RefreshToken)
	if got := srv.Stats(); got.FamiliesRevoked != 0 || got.Reuses != 0 || got.InvalidGrant != 2 {
		t.Errorf("got %+v, want revocations not counted as reuse", got)
	}
}

func TestErrorStyles(t *testing.T) {
	for _, tc := range []struct {
		style               refreshtest.ErrorStyle
		grant, client       int
		contentType         string
		code                bool
		basicChallengeOn401 bool
	}{
		{refreshtest.ErrorsRFC, 400, 401, "application/json", true, true},
		{refreshtest.Errors500, 500, 500, "application/json", true, false},
		{refreshtest.ErrorsHTML, 400, 401, "text/html", false, true},
	} {
		t.Run(tc.style.String(), func(t *testing.T) {
			srv := newServer(t, refreshtest.Options{Errors: tc.style, Auth: refreshtest.AuthBasic})
			tok := srv.Token()
			basic := func(r *http.Request) {
				r.SetBasicAuth(url.QueryEscape(refreshtest.DefaultClientID), url.QueryEscape(refreshtest.DefaultClientSecret))
			}
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			srv.RevokeGrants()
			r := do(t, nil, formRequest(t, srv, form, basic))
			if r.status != tc.grant || !strings.HasPrefix(r.header.Get("Content-Type"), tc.contentType) {
				t.Errorf("invalid_grant: got %d %q, want %d %q", r.status, r.header.Get("Content-Type"), tc.grant, tc.contentType)
			}
			if tc.code && (r.code() != "invalid_grant" || r.str("error_description") == "") {
				t.Errorf("invalid_grant: got body %s, want error and error_description", r.body)
			}
			if !tc.code && (strings.Contains(r.body, "invalid_grant") || !strings.Contains(r.body, tok.RefreshToken)) {
				t.Errorf("HTML: got body %s, want no OAuth code and the refresh token quoted", r.body)
			}

			r = do(t, nil, formRequest(t, srv, form, func(r *http.Request) { r.SetBasicAuth("wrong", "creds") }))
			if r.status != tc.client {
				t.Errorf("invalid_client: got %d, want %d", r.status, tc.client)
			}
			if got := r.header.Get("WWW-Authenticate"); (got == `Basic realm="refreshtest"`) != tc.basicChallengeOn401 {
				t.Errorf("invalid_client: got WWW-Authenticate %q, want a Basic challenge: %v", got, tc.basicChallengeOn401)
			}
			if tc.code && r.code() != "invalid_client" {
				t.Errorf("invalid_client: got body %s", r.body)
			}
			if got := srv.Stats(); got.InvalidGrant != 1 || got.InvalidClient != 1 {
				t.Errorf("got %+v, want one invalid_grant and one invalid_client counted", got)
			}
		})
	}
}

func TestRequestValidation(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	rt := srv.Token().RefreshToken
	with := func(k, v string) url.Values {
		f := refreshForm(rt)
		if v == "" {
			f.Del(k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
		code   string
	}{
		{"GET", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, srv.TokenURL, nil)
			return r
		}(), 405, "invalid_request"},
		{"query string", formRequest(t, srv, refreshForm(rt), func(r *http.Request) { r.URL.RawQuery = "refresh_token=" + rt }), 400, "invalid_request"},
		{"JSON body", formRequest(t, srv, refreshForm(rt), func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }), 400, "invalid_request"},
		{"no content type", formRequest(t, srv, refreshForm(rt), func(r *http.Request) { r.Header.Del("Content-Type") }), 400, "invalid_request"},
		{"repeated parameter", formRequest(t, srv, func() url.Values { f := refreshForm(rt); f.Add("refresh_token", rt); return f }()), 400, "invalid_request"},
		{"no grant_type", formRequest(t, srv, with("grant_type", "")), 400, "invalid_request"},
		{"other grant_type", formRequest(t, srv, with("grant_type", "password")), 400, "unsupported_grant_type"},
		{"no refresh token", formRequest(t, srv, with("refresh_token", "")), 400, "invalid_request"},
		{"unknown refresh token", formRequest(t, srv, with("refresh_token", "rt-1-0-guess")), 400, "invalid_grant"},
		{"scope not granted", formRequest(t, srv, with("scope", "admin")), 400, "invalid_scope"},
		{"bad secret", formRequest(t, srv, with("client_secret", "nope")), 401, "invalid_client"},
	} {
		r := do(t, nil, tc.req)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.TokenURL, nil)
	if r := do(t, nil, req); r.header.Get("Allow") != "POST" {
		t.Errorf("GET: got Allow %q, want POST", r.header.Get("Allow"))
	}
	if r := do(t, nil, formRequest(t, srv, refreshForm(rt), func(r *http.Request) { r.URL.Path = "/other" })); r.status != 404 {
		t.Errorf("other path: got %d, want 404", r.status)
	}
	// Unknown parameters are ignored (RFC 6749 §3.2) and the refresh token
	// is intact after all those refusals.
	if r := do(t, nil, formRequest(t, srv, with("resource", "https://api.example"))); r.status != 200 {
		t.Errorf("extra parameter: got %d %s, want 200", r.status, r.body)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 13, Refreshes: 1, Rotations: 1,
		InvalidRequest: 8, InvalidClient: 1, InvalidGrant: 1, InvalidScope: 1, UnsupportedGrantType: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestClientAuth(t *testing.T) {
	const id, secret = "my client", "s3cret+/ &="
	body := func(f url.Values) url.Values { f.Set("client_id", id); f.Set("client_secret", secret); return f }
	idOnly := func(f url.Values) url.Values { f.Set("client_id", id); return f }
	none := func(f url.Values) url.Values { return f }
	basic := func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
	basicRaw := func(r *http.Request) { r.SetBasicAuth(id, secret) }
	basicWrong := func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), "wrong") }
	bearer := func(r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+base64.StdEncoding.EncodeToString([]byte(id)))
	}
	noHeader := func(*http.Request) {}
	wrongSecret := func(f url.Values) url.Values { body(f); f.Set("client_secret", "wrong"); return f }

	type variant struct {
		name   string
		form   func(url.Values) url.Values
		header func(*http.Request)
	}
	vBody := variant{"body", body, noHeader}
	vBasic := variant{"basic", none, basic}
	vBasicRaw := variant{"basic raw", none, basicRaw}
	vBoth := variant{"basic and body", body, basic}
	vBasicAndID := variant{"basic and client_id", idOnly, basic}
	vNone := variant{"none", none, noHeader}
	vIDOnly := variant{"client_id only", idOnly, noHeader}
	vWrongBody := variant{"wrong secret in body", wrongSecret, noHeader}
	vWrongBasic := variant{"wrong secret in basic", none, basicWrong}
	vBearer := variant{"bearer header", none, bearer}
	all := []variant{vBody, vBasic, vBasicRaw, vBoth, vBasicAndID, vNone, vIDOnly, vWrongBody, vWrongBasic, vBearer}

	for _, tc := range []struct {
		name string
		opts refreshtest.Options
		ok   variant
	}{
		{"AuthBody", refreshtest.Options{Auth: refreshtest.AuthBody}, vBody},
		{"AuthBasic", refreshtest.Options{Auth: refreshtest.AuthBasic}, vBasic},
		{"AuthBasicRaw", refreshtest.Options{Auth: refreshtest.AuthBasicRaw}, vBasicRaw},
		{"Public", refreshtest.Options{Public: true}, vIDOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.ClientID, tc.opts.ClientSecret = id, secret
			srv := newServer(t, tc.opts)
			// The revocation endpoint authenticates the client exactly
			// as the token endpoint does.
			for _, v := range all {
				tok := srv.Token()
				f := v.form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
				rf := v.form(url.Values{"token": {srv.Token().RefreshToken}})
				for _, r := range []reply{do(t, nil, formRequest(t, srv, f, v.header)), do(t, nil, revocationRequest(t, srv, rf, v.header))} {
					want, wantStatus := "invalid_client", 401
					switch {
					case v.name == tc.ok.name:
						want, wantStatus = "", 200
					case v.name == vBoth.name || v.name == vBasicAndID.name:
						want, wantStatus = "invalid_request", 400 // two methods at once
					}
					if r.status != wantStatus || r.code() != want {
						t.Errorf("%s: got %d %s, want %d %q", v.name, r.status, r.body, wantStatus, want)
					}
				}
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		opts   refreshtest.Options
		style  oauth2.AuthStyle
		secret string
	}{
		{refreshtest.Options{}, oauth2.AuthStyleInParams, refreshtest.DefaultClientSecret},
		{refreshtest.Options{Auth: refreshtest.AuthBasic}, oauth2.AuthStyleInHeader, refreshtest.DefaultClientSecret},
		{refreshtest.Options{Auth: refreshtest.AuthBasicRaw}, oauth2.AuthStyleInHeader, refreshtest.DefaultClientSecret},
		{refreshtest.Options{Public: true, ClientSecret: "ignored"}, oauth2.AuthStyleInParams, ""},
	} {
		srv := newServer(t, tc.opts)
		c := srv.Config()
		if c.ClientID != refreshtest.DefaultClientID || c.ClientSecret != tc.secret || c.Endpoint.AuthStyle != tc.style ||
			c.Endpoint.TokenURL != srv.TokenURL || !strings.HasSuffix(srv.TokenURL, "/token") {
			t.Errorf("%+v: got %+v", tc.opts, c)
		}
	}
	if c := newServer(t, refreshtest.Options{Scope: "PRODUCTION", TokenPath: "/oauth2/token"}).Config(); len(c.Scopes) != 1 || c.Scopes[0] != "PRODUCTION" || !strings.HasSuffix(c.Endpoint.TokenURL, "/oauth2/token") {
		t.Errorf("Scope and TokenPath: got %+v", c)
	}
}

// TestXOAuth2 drives the server with golang.org/x/oauth2's own refresh, in
// both of its auth styles and as a public client.
func TestXOAuth2(t *testing.T) {
	for _, opts := range []refreshtest.Options{{}, {Auth: refreshtest.AuthBasic}, {Public: true}} {
		srv := newServer(t, opts)
		tok := srv.Token()
		tok.Expiry = time.Now().Add(-time.Minute) // make x/oauth2 refresh
		got, err := srv.Config().TokenSource(t.Context(), tok).Token()
		if err != nil {
			t.Errorf("%+v: %v", opts, err)
			continue
		}
		if got.RefreshToken == tok.RefreshToken || apiStatus(t, srv, got.AccessToken) != 200 {
			t.Errorf("%+v: got %+v, want a rotated, working token", opts, got)
		}
	}
}

func TestScope(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Scope: "PRODUCTION"})
	rt := srv.Token().RefreshToken
	for _, tc := range []struct {
		scope  string
		status int
		code   string
	}{
		{"", 400, "invalid_scope"},
		{"PRODUCTION SANDBOX", 400, "invalid_scope"},
		{"production", 400, "invalid_scope"},
		{"PRODUCTION", 200, ""},
	} {
		f := refreshForm(rt)
		if tc.scope != "" {
			f.Set("scope", tc.scope)
		}
		r := do(t, nil, formRequest(t, srv, f))
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("scope %q: got %d %s, want %d %q", tc.scope, r.status, r.body, tc.status, tc.code)
		}
		if r.status == 200 && r.str("scope") != "PRODUCTION" {
			t.Errorf("got %s, want scope PRODUCTION in the answer", r.body)
		}
	}
}

func TestJSONDialect(t *testing.T) {
	srv := newServer(t, refreshtest.Options{
		TokenPath: "/v1/auth/token",
		JSON: &refreshtest.JSONDialect{
			Field:  "refreshToken",
			Header: http.Header{"partnerId": {"4711"}, "grantType": {"refresh_token"}},
		},
	})
	tok := srv.Token()
	post := func(body string, edit func(h http.Header)) reply {
		req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(body))
		req.Header["partnerId"] = []string{"4711"} // as the partner documents it
		req.Header["grantType"] = []string{"refresh_token"}
		req.Header.Set("Content-Type", "application/json")
		if edit != nil {
			edit(req.Header)
		}
		return do(t, nil, req)
	}
	for _, tc := range []struct {
		name string
		body string
		edit func(http.Header)
	}{
		{"no partnerId", `{"refreshToken":"` + tok.RefreshToken + `"}`, func(h http.Header) { delete(h, "partnerId") }},
		{"wrong grantType", `{"refreshToken":"` + tok.RefreshToken + `"}`, func(h http.Header) { h["grantType"] = []string{"password"} }},
		{"form body", `refreshToken=` + tok.RefreshToken, func(h http.Header) { h.Set("Content-Type", "application/x-www-form-urlencoded") }},
		{"not JSON", `{"refreshToken":`, nil},
		{"missing field", `{"refresh_token":"` + tok.RefreshToken + `"}`, nil},
		{"empty field", `{"refreshToken":""}`, nil},
		{"number", `{"refreshToken":42}`, nil},
	} {
		if r := post(tc.body, tc.edit); r.status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: got %d %s, want 400 invalid_request", tc.name, r.status, r.body)
		}
	}
	if r := post(`{"refreshToken":""}`, nil); r.str("error_description") != "Missing refresh token." {
		t.Errorf("got %s, want the partner's description", r.body)
	}
	// Header names match in any case, as in HTTP.
	r := post(`{"refreshToken":"`+tok.RefreshToken+`"}`, func(h http.Header) {
		delete(h, "partnerId")
		h.Set("PARTNERID", "4711")
	})
	if r.status != 200 || !strings.HasPrefix(r.str("refresh_token"), "rt-1-1-") {
		t.Fatalf("valid request: got %d %s, want 200 and a new pair", r.status, r.body)
	}
	if r := post(`{"refreshToken":"`+tok.RefreshToken+`"}`, nil); r.code() != "invalid_grant" {
		t.Errorf("reuse: got %d %s, want invalid_grant", r.status, r.body)
	}
}

// TestConcurrentLoser holds a refresh in flight and sends the same refresh
// token again: the second request loses with invalid_request, the first
// wins, and retrying the loser's token afterwards is a reuse. The first is
// held until the second is answered, not for a time, so that a slow machine
// cannot make them one after the other.
func TestConcurrentLoser(t *testing.T) {
	t.Parallel()
	hold, release := holdGranted(t, nil)
	srv := newServer(t, refreshtest.Options{ConcurrentLoserInvalidRequest: true, OnTokenRequest: hold})
	tok := srv.Token()
	first := make(chan reply, 1)
	go func() { first <- postRefresh(t, srv, tok.RefreshToken) }()
	waitFor(t, "the first request arrived", func() bool { return srv.Stats().TokenRequests == 1 })

	loser := postRefresh(t, srv, tok.RefreshToken)
	if loser.status != 400 || loser.code() != "invalid_request" || !strings.Contains(loser.str("error_description"), "retry") {
		t.Errorf("loser: got %d %s, want 400 invalid_request, please retry", loser.status, loser.body)
	}
	release()
	winner := <-first
	if winner.status != 200 {
		t.Fatalf("winner: got %d %s, want 200", winner.status, winner.body)
	}
	if r := postRefresh(t, srv, tok.RefreshToken); r.code() != "invalid_grant" {
		t.Errorf("the loser retries: got %d %s, want invalid_grant (a reuse)", r.status, r.body)
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 3, Refreshes: 1, Rotations: 1, Reuses: 1, FamiliesRevoked: 1,
		ConcurrentLosers: 1, InvalidRequest: 1, InvalidGrant: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestConcurrentReuse: without ConcurrentLoserInvalidRequest two concurrent
// refreshes with the same token are handled one after the other, and the
// second is a reuse that revokes the family, the first one's new tokens
// included.
func TestConcurrentReuse(t *testing.T) {
	t.Parallel()
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Latency: 100 * time.Millisecond}})
	tok := srv.Token()
	replies := make(chan reply, 2)
	go func() { replies <- postRefresh(t, srv, tok.RefreshToken) }()
	waitFor(t, "the first request arrived", func() bool { return srv.Stats().TokenRequests == 1 })
	go func() { replies <- postRefresh(t, srv, tok.RefreshToken) }()
	a, b := <-replies, <-replies
	if a.status != 200 {
		a, b = b, a
	}
	if a.status != 200 || b.code() != "invalid_grant" {
		t.Fatalf("got %d %s and %d %s, want one 200 and one invalid_grant", a.status, a.body, b.status, b.body)
	}
	if s := apiStatus(t, srv, a.str("access_token")); s != 401 {
		t.Errorf("the winner's access token: got %d, want 401 (family revoked)", s)
	}
	if got := srv.Stats(); got.Reuses != 1 || got.FamiliesRevoked != 1 || got.ConcurrentLosers != 0 {
		t.Errorf("got %+v, want one reuse and one revocation", got)
	}
}

// TestStatsConcurrent hammers both endpoints from many goroutines; the
// counters must add up exactly (and -race must stay quiet).
func TestStatsConcurrent(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateGraceNew, OneAccessTokenPerGrant: true})
	const users, rounds = 8, 10
	var wg sync.WaitGroup
	for range users {
		tok := srv.Token()
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, rt := tok.AccessToken, tok.RefreshToken
			for range rounds {
				if s := apiStatus(t, srv, at); s != 200 {
					t.Errorf("got %d, want 200", s)
				}
				at, rt = mustRefresh(t, srv, rt)
				api(t, srv, http.MethodGet, "/", "", "") // 401
			}
		}()
	}
	wg.Wait()
	want := refreshtest.Stats{Grants: users, TokenRequests: users * rounds, Refreshes: users * rounds, Rotations: users * rounds,
		APIRequests: 2 * users * rounds, Served200: users * rounds, Served401: users * rounds}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestNewServerPanics(t *testing.T) {
	for _, o := range []refreshtest.Options{
		{Rotation: 9},
		{Errors: -1},
		{Auth: 7},
		{Grace: -time.Second},
		{TokenPath: "token"},
		{RevocationPath: "revoke"},
		{RevocationPath: "/token"},
		{Faults: refreshtest.Faults{Rate: 1.5}},
		{Faults: refreshtest.Faults{Kind: 99}},
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(fmt.Sprint(r), "refreshtest: ") {
					t.Errorf("%+v: got panic %v, want one starting with refreshtest:", o, r)
				}
			}()
			refreshtest.NewServer(o).Close()
		}()
	}
}
