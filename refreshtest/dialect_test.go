package refreshtest_test

// The options that make the server speak one API's dialect exactly:
// Strict, TokenType, RefreshTokenSuffix, RotateSame, BareUnauthorized,
// RefuseRefreshTokens and the ErrorsHTML page; and, in TestSeedDialects, the
// four seed APIs (/work/shared/seeds, PROVIDERS.md) built from them.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// TestStrictForm: Strict refuses a form parameter the dialect does not
// define, which the RFC tells a server to ignore.
func TestStrictForm(t *testing.T) {
	for _, strict := range []bool{false, true} {
		srv := newServer(t, refreshtest.Options{Strict: strict, Scope: "PRODUCTION"})
		rt := srv.Token().RefreshToken
		form := refreshForm(rt)
		form.Set("scope", "PRODUCTION")
		form.Set("resource", "https://api.test")
		r := do(t, nil, formRequest(t, srv, form))
		switch {
		case !strict && r.status != 200:
			t.Errorf("lenient, unknown parameter: got %d %s, want 200", r.status, r.body)
		case strict && (r.status != 400 || r.code() != "invalid_request" || !strings.Contains(r.str("error_description"), "resource")):
			t.Errorf("strict, unknown parameter: got %d %s, want 400 invalid_request naming resource", r.status, r.body)
		}
		if strict {
			// Everything the dialect defines is accepted.
			form.Del("resource")
			if r := do(t, nil, formRequest(t, srv, form)); r.status != 200 {
				t.Errorf("strict, the dialect's parameters: got %d %s, want 200", r.status, r.body)
			}
		}
	}

	// A public client sends client_id, and no client_secret even empty.
	srv := newServer(t, refreshtest.Options{Strict: true, Public: true})
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {srv.Token().RefreshToken}, "client_id": {refreshtest.DefaultClientID}}
	if r := do(t, nil, formRequest(t, srv, form)); r.status != 200 {
		t.Errorf("public client: got %d %s, want 200", r.status, r.body)
	}
}

// TestStrictBasic: with Strict, AuthBasic credentials must be
// form-urlencoded even where decoding raw ones would give the right value.
func TestStrictBasic(t *testing.T) {
	const id, secret = "wso2 app", "p@ss:w/rd" // url.QueryUnescape leaves both as they are
	for _, strict := range []bool{false, true} {
		srv := newServer(t, refreshtest.Options{Strict: strict, Auth: refreshtest.AuthBasic, ClientID: id, ClientSecret: secret})
		tok := srv.Token()
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
		r := do(t, nil, formRequest(t, srv, form, func(r *http.Request) { r.SetBasicAuth(id, secret) }))
		if wantOK := !strict; (r.status == 200) != wantOK {
			t.Errorf("strict %v, raw Basic: got %d %s, want success %v", strict, r.status, r.body, wantOK)
		}
		if strict && r.code() != "invalid_client" {
			t.Errorf("strict, raw Basic: got %s, want invalid_client", r.body)
		}
		if strict {
			r := do(t, nil, formRequest(t, srv, form, func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }))
			if r.status != 200 {
				t.Errorf("strict, encoded Basic: got %d %s, want 200", r.status, r.body)
			}
		}
	}
}

// TestStrictJSON: with Strict, a JSON dialect takes no Authorization
// header, no member but its field, and no look-alike of a required header.
func TestStrictJSON(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true, JSON: &refreshtest.JSONDialect{
		Field: "refreshToken", Header: http.Header{"partnerId": {"4711"}},
	}})
	rt := srv.Token().RefreshToken
	post := func(body string, edit func(http.Header)) reply {
		req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("partnerId", "4711")
		if edit != nil {
			edit(req.Header)
		}
		return do(t, nil, req)
	}
	valid := `{"refreshToken":"` + rt + `"}`
	for _, tc := range []struct {
		name string
		body string
		edit func(http.Header)
		desc string // in the description
	}{
		{"Authorization", valid, func(h http.Header) { h.Set("Authorization", "Basic eDp5") }, "Authorization"},
		{"another member", `{"refreshToken":"` + rt + `","grant_type":"refresh_token"}`, nil, "nothing else"},
		{"look-alike header", valid, func(h http.Header) { h.Set("Partner-Id", "4711") }, "Partner-Id"},
		{"look-alike header with _", valid, func(h http.Header) { h["Partner_id"] = []string{"4711"} }, "Partner_id"},
	} {
		if r := post(tc.body, tc.edit); r.status != 400 || r.code() != "invalid_request" || !strings.Contains(r.str("error_description"), tc.desc) {
			t.Errorf("%s: got %d %s, want 400 invalid_request mentioning %q", tc.name, r.status, r.body, tc.desc)
		}
	}
	if r := post(valid, func(h http.Header) { h.Del("partnerId"); h.Set("PARTNERID", "4711") }); r.status != 200 {
		t.Errorf("the header in another case: got %d %s, want 200", r.status, r.body)
	}
	if got := srv.Stats(); got.InvalidRequest != 4 || got.Refreshes != 1 {
		t.Errorf("got %+v, want 4 invalid_request and 1 refresh", got)
	}
}

// TestStrictAPI: with Strict the protected API wants "Bearer" and one space,
// as RFC 6750 spells it.
func TestStrictAPI(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true})
	at := srv.Token().AccessToken
	for _, tc := range []struct {
		header string
		want   int
	}{
		{"Bearer " + at, 200},
		{"bearer " + at, 401},
		{"BEARER " + at, 401},
		{"Bearer  " + at, 401},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/x", nil)
		req.Header.Set("Authorization", tc.header)
		if r := do(t, nil, req); r.status != tc.want {
			t.Errorf("%q: got %d, want %d", tc.header, r.status, tc.want)
		}
	}
	lenient := newServer(t, refreshtest.Options{})
	if s := api(t, lenient, http.MethodGet, "/x", "", ""); s.status != 401 {
		t.Fatalf("no token: got %d, want 401", s.status)
	}
	req, _ := http.NewRequest(http.MethodGet, lenient.URL+"/x", nil)
	req.Header.Set("Authorization", "bearer  "+lenient.Token().AccessToken)
	if r := do(t, nil, req); r.status != 200 {
		t.Errorf("lenient, bearer and two spaces: got %d, want 200", r.status)
	}
}

// TestTokenType: Options.TokenType is the token_type of every answer.
func TestTokenType(t *testing.T) {
	for _, tc := range []struct{ opt, want string }{{"", "bearer"}, {"Bearer", "Bearer"}} {
		srv := newServer(t, refreshtest.Options{TokenType: tc.opt})
		if r := postRefresh(t, srv, srv.Token().RefreshToken); r.str("token_type") != tc.want {
			t.Errorf("TokenType %q: got %s, want token_type %q", tc.opt, r.body, tc.want)
		}
	}
}

// TestRefreshTokenSuffix: every refresh token ends with the suffix, and a
// client must encode it to be understood.
func TestRefreshTokenSuffix(t *testing.T) {
	const suffix = "+/=&x"
	srv := newServer(t, refreshtest.Options{RefreshTokenSuffix: suffix})
	tok := srv.Token()
	if !strings.HasPrefix(tok.RefreshToken, "rt-1-0-") || !strings.HasSuffix(tok.RefreshToken, suffix) {
		t.Fatalf("got refresh token %q, want rt-1-0-…%s", tok.RefreshToken, suffix)
	}
	if strings.Contains(tok.AccessToken, suffix) {
		t.Errorf("got access token %q, want it without the suffix", tok.AccessToken)
	}
	// Not encoded: "+" becomes a space and "&x" another parameter.
	body := "grant_type=refresh_token&refresh_token=" + tok.RefreshToken + "&client_id=" + url.QueryEscape(refreshtest.DefaultClientID) +
		"&client_secret=" + url.QueryEscape(refreshtest.DefaultClientSecret)
	req, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := do(t, nil, req); r.code() != "invalid_grant" {
		t.Errorf("unencoded: got %d %s, want invalid_grant", r.status, r.body)
	}
	_, rt := mustRefresh(t, srv, tok.RefreshToken)
	if !strings.HasPrefix(rt, "rt-1-1-") || !strings.HasSuffix(rt, suffix) {
		t.Errorf("got rotated refresh token %q, want rt-1-1-…%s", rt, suffix)
	}
}

// TestRotateSame: the refresh token is sent back with every answer and
// stays valid; there is never a reuse.
func TestRotateSame(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateSame, OneAccessTokenPerGrant: true})
	tok := srv.Token()
	var last string
	for i := range 3 {
		at, rt := mustRefresh(t, srv, tok.RefreshToken)
		if rt != tok.RefreshToken {
			t.Errorf("refresh %d: got refresh token %q, want the same %q", i, rt, tok.RefreshToken)
		}
		if at == tok.AccessToken || at == last {
			t.Errorf("refresh %d: got access token %q again, want a new one", i, at)
		}
		last = at
	}
	if apiStatus(t, srv, last) != 200 {
		t.Errorf("the newest access token: want it accepted")
	}
	want := refreshtest.Stats{Grants: 1, TokenRequests: 3, Refreshes: 3, APIRequests: 1, Served200: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if refreshtest.RotateSame.String() != "RotateSame" {
		t.Errorf("got %q", refreshtest.RotateSame.String())
	}
}

// TestBareUnauthorized: the API's 401 has no WWW-Authenticate header; other
// refusals keep theirs.
func TestBareUnauthorized(t *testing.T) {
	srv := newServer(t, refreshtest.Options{BareUnauthorized: true})
	tok := srv.Token()
	if r := api(t, srv, http.MethodGet, "/x", "at-unknown", ""); r.status != 401 || r.header.Values("WWW-Authenticate") != nil {
		t.Errorf("unknown token: got %d %q, want 401 without a challenge", r.status, r.header.Values("WWW-Authenticate"))
	}
	if r := api(t, srv, http.MethodGet, "/x", "", ""); r.status != 401 || r.header.Values("WWW-Authenticate") != nil {
		t.Errorf("no token: got %d %q, want 401 without a challenge", r.status, r.header.Values("WWW-Authenticate"))
	}
	if r := api(t, srv, http.MethodGet, refreshtest.ScopeNeededPath, tok.AccessToken, ""); r.status != 403 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("insufficient scope: got %d %q, want 403 with its challenge", r.status, r.header.Get("WWW-Authenticate"))
	}
}

// TestRefuseRefreshTokens: the live refresh tokens are refused with the code
// and description given, in the server's error style; a spent one is still
// a reuse; a later login, and the access tokens, are not affected.
func TestRefuseRefreshTokens(t *testing.T) {
	for _, tc := range []struct {
		style       refreshtest.ErrorStyle
		code, desc  string
		status      int
		wantRequest int // Stats.InvalidRequest
	}{
		{refreshtest.ErrorsRFC, "invalid_grant", "Refresh token has expired or is invalid.", 400, 0},
		{refreshtest.Errors500, "invalid_grant", "Refresh token has expired or is invalid.", 500, 0},
		{refreshtest.ErrorsRFC, "invalid_request", "Missing refresh token.", 400, 1},
		{refreshtest.ErrorsHTML, "invalid_grant", "Refresh token is expired.", 400, 0},
	} {
		t.Run(tc.style.String()+"/"+tc.code, func(t *testing.T) {
			var rec recorder
			srv := newServer(t, refreshtest.Options{Errors: tc.style, OnTokenRequest: rec.add})
			old := srv.Token()
			_, spentNext := mustRefresh(t, srv, old.RefreshToken) // old is spent
			live := srv.Token()
			srv.RefuseRefreshTokens(tc.code, tc.desc)
			later := srv.Token()
			rec.take()

			r := postRefresh(t, srv, live.RefreshToken)
			if r.status != tc.status {
				t.Errorf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.style == refreshtest.ErrorsHTML {
				if !strings.Contains(r.body, tc.desc) || strings.Contains(r.body, tc.code) {
					t.Errorf("got page %s, want the description and no code", r.body)
				}
			} else if r.code() != tc.code || r.str("error_description") != tc.desc {
				t.Errorf("got %s, want %s %q", r.body, tc.code, tc.desc)
			}
			evs := rec.take()
			if len(evs) != 1 || evs[0].Kind != refreshtest.TokenRefused || evs[0].Code != tc.code || evs[0].Description != tc.desc {
				t.Errorf("got events %s (%+v), want one refusal %s %q", briefs(evs), evs, tc.code, tc.desc)
			}
			// The second grant's rotated token too: it was live.
			if r := postRefresh(t, srv, spentNext); r.status != tc.status {
				t.Errorf("grant 1's newest refresh token: got %d %s, want the refusal", r.status, r.body)
			}
			// A spent one is a reuse, as before.
			if r := postRefresh(t, srv, old.RefreshToken); r.status != tc.status {
				t.Errorf("spent token: got %d %s, want invalid_grant", r.status, r.body)
			}
			if st := srv.Stats(); st.Reuses != 1 || st.FamiliesRevoked != 1 {
				t.Errorf("got %+v, want the spent token counted as a reuse", st)
			}
			if apiStatus(t, srv, live.AccessToken) != 200 {
				t.Errorf("the access token of a refused refresh token: want it still accepted")
			}
			mustRefresh(t, srv, later.RefreshToken)
			if st := srv.Stats(); st.InvalidRequest != 2*tc.wantRequest || st.Refreshes != 2 {
				t.Errorf("got %+v, want %d invalid_request and 2 refreshes", st, 2*tc.wantRequest)
			}
		})
	}

	defer func() {
		if r := recover(); r == nil {
			t.Errorf("RefuseRefreshTokens without a code: want a panic")
		}
	}()
	newServer(t, refreshtest.Options{}).RefuseRefreshTokens("", "x")
}

// TestErrorsHTMLPage: the page has markup and a style element, the status
// and the description, and quotes the refresh token and the client's
// credentials, without an OAuth code.
func TestErrorsHTMLPage(t *testing.T) {
	const id, secret = "wso2 app", "p@ss:w/rd"
	srv := newServer(t, refreshtest.Options{Errors: refreshtest.ErrorsHTML, ClientID: id, ClientSecret: secret})
	tok := srv.Token()
	srv.RefuseRefreshTokens("invalid_grant", "Refresh token is expired.")
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {id}, "client_secret": {secret}}
	r := do(t, nil, formRequest(t, srv, form))
	for _, want := range []string{"<html>", "<style>", "Bad Request", "Refresh token is expired.", tok.RefreshToken, id, secret} {
		if !strings.Contains(r.body, want) {
			t.Errorf("got page %s, want %q in it", r.body, want)
		}
	}
	if strings.Contains(r.body, "invalid_grant") || r.status != 400 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("got %d %q %s, want 400 HTML without the code", r.status, r.header.Get("Content-Type"), r.body)
	}
}

// The seed APIs' dialects, as the four documents in /work/shared/seeds
// describe their token endpoints.
const (
	gw2ID, gw2Secret       = "gw2-client-7f3a", "gw2 s3cret+/&=" // needs form encoding in the body
	gw2RawID, gw2RawSecret = "my client", "s+cr&t="              // gw2.me does not URL-decode Basic credentials
	wso2ID, wso2Secret     = "wso2 app", "p@ss:w/rd"
	twoBAID, twoBASecret   = "2ba-partner", "2ba+secret/=&"
	twoBASuffix            = "+/=&x" // 2BA's refresh tokens need URL encoding
	partnerID              = "4711"
)

func seedGW2() refreshtest.Options {
	return refreshtest.Options{TokenPath: "/api/token", Errors: refreshtest.Errors500, Strict: true, ClientID: gw2ID, ClientSecret: gw2Secret,
		OneAccessTokenPerGrant: true, Lifetime: 7 * 24 * time.Hour, TokenType: "Bearer", BareUnauthorized: true}
}

func seedGW2Raw() refreshtest.Options {
	o := seedGW2()
	o.ClientID, o.ClientSecret, o.Auth = gw2RawID, gw2RawSecret, refreshtest.AuthBasicRaw
	return o
}

func seedWSO2() refreshtest.Options {
	return refreshtest.Options{TokenPath: "/token", Auth: refreshtest.AuthBasic, Scope: "PRODUCTION", Strict: true,
		ClientID: wso2ID, ClientSecret: wso2Secret, OneAccessTokenPerGrant: true, TokenType: "Bearer"}
}

func seed2BA() refreshtest.Options {
	return refreshtest.Options{TokenPath: "/OAuth/Token", Strict: true, ClientID: twoBAID, ClientSecret: twoBASecret,
		RefreshTokenSuffix: twoBASuffix, OneAccessTokenPerGrant: true}
}

func seedPartner() refreshtest.Options {
	return refreshtest.Options{TokenPath: "/v1/auth/token", Strict: true, Lifetime: 24 * time.Hour, TokenType: "Bearer", OneAccessTokenPerGrant: true,
		JSON: &refreshtest.JSONDialect{Field: "refreshToken", Header: http.Header{"partnerId": {partnerID}, "grantType": {"refresh_token"}}}}
}

// TestSeedDialects shows that the seed dialects can fail a client: each
// refuses a token request that strays from its seed's document in the way a
// careless client would, after granting the conforming one; and the
// library, configured as a user of each seed API would configure it, is
// refused when it presents a spent refresh token, which revokes the family.
// (It was TestSeedFakes in the refresh package, which tested that package's
// own strict fakes of the seeds.)
func TestSeedDialects(t *testing.T) {
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
	partnerHeader := http.Header{"Partnerid": {partnerID}, "Granttype": {"refresh_token"}}
	gw2Form := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {gw2ID}, "client_secret": {gw2Secret}}
	}
	rawBasic := func(r *http.Request) *http.Request { r.SetBasicAuth(gw2RawID, gw2RawSecret); return r }
	wso2Basic := func(r *http.Request) *http.Request {
		r.SetBasicAuth(url.QueryEscape(wso2ID), url.QueryEscape(wso2Secret))
		return r
	}
	twoBAForm := func(rt string) url.Values {
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {twoBAID}, "client_secret": {twoBASecret}}
	}
	partnerBody := func(rt string) string { return `{"refreshToken":"` + rt + `"}` }

	type request func(srv *refreshtest.Server, rt string) *http.Request
	dialects := []struct {
		name string
		opts refreshtest.Options
		good request // a request that conforms
	}{
		{"gw2", seedGW2(), func(srv *refreshtest.Server, rt string) *http.Request { return form(srv.TokenURL, gw2Form(rt)) }},
		{"gw2 raw Basic", seedGW2Raw(), func(srv *refreshtest.Server, rt string) *http.Request {
			return rawBasic(form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}))
		}},
		{"wso2", seedWSO2(), func(srv *refreshtest.Server, rt string) *http.Request {
			return wso2Basic(form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"PRODUCTION"}}))
		}},
		{"2ba", seed2BA(), func(srv *refreshtest.Server, rt string) *http.Request { return form(srv.TokenURL, twoBAForm(rt)) }},
		{"partner", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			return jsonReq(srv.TokenURL, partnerBody(rt), partnerHeader)
		}},
	}
	for _, d := range dialects {
		t.Run("conforming/"+d.name, func(t *testing.T) {
			srv := newServer(t, d.opts)
			if r := do(t, nil, d.good(srv, srv.Token().RefreshToken)); r.status != 200 || r.str("access_token") == "" {
				t.Errorf("got %d %s, want 200 with a token", r.status, r.body)
			}
		})
	}

	strict := []struct {
		name    string
		opts    refreshtest.Options
		req     request
		status  int    // of the refusal
		code    string // of the refusal; "" for none (a 404)
		mention string // in the refusal's description
	}{
		{"gw2: Basic and body credentials at once", seedGW2(), func(srv *refreshtest.Server, rt string) *http.Request {
			r := form(srv.TokenURL, gw2Form(rt))
			r.SetBasicAuth(gw2ID, gw2Secret)
			return r
		}, 500, "invalid_request", "both"},
		{"gw2: no client_secret", seedGW2(), func(srv *refreshtest.Server, rt string) *http.Request {
			return form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {gw2ID}})
		}, 500, "invalid_client", "authentication"},
		{"gw2 raw Basic: URL-encoded credentials", seedGW2Raw(), func(srv *refreshtest.Server, rt string) *http.Request {
			r := form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
			r.SetBasicAuth(url.QueryEscape(gw2RawID), url.QueryEscape(gw2RawSecret))
			return r
		}, 500, "invalid_client", "authentication"},
		{"gw2 raw Basic: credentials in the body too", seedGW2Raw(), func(srv *refreshtest.Server, rt string) *http.Request {
			return rawBasic(form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
				"client_id": {gw2RawID}, "client_secret": {gw2RawSecret}}))
		}, 500, "invalid_request", "both"},
		{"wso2: raw Basic credentials", seedWSO2(), func(srv *refreshtest.Server, rt string) *http.Request {
			r := form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"PRODUCTION"}})
			r.SetBasicAuth(wso2ID, wso2Secret)
			return r
		}, 401, "invalid_client", "form-urlencoded"},
		{"wso2: client_secret in the body", seedWSO2(), func(srv *refreshtest.Server, rt string) *http.Request {
			return wso2Basic(form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"PRODUCTION"},
				"client_secret": {wso2Secret}}))
		}, 400, "invalid_request", "both"},
		{"wso2: no scope", seedWSO2(), func(srv *refreshtest.Server, rt string) *http.Request {
			return wso2Basic(form(srv.TokenURL, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}))
		}, 400, "invalid_scope", "PRODUCTION"},
		{"2ba: refresh token not URL-encoded", seed2BA(), func(srv *refreshtest.Server, rt string) *http.Request {
			body := "grant_type=refresh_token&refresh_token=" + rt +
				"&client_id=" + url.QueryEscape(twoBAID) + "&client_secret=" + url.QueryEscape(twoBASecret)
			r, _ := http.NewRequest(http.MethodPost, srv.TokenURL, strings.NewReader(body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, 400, "invalid_request", "Parameter x "},
		{"2ba: wrong path", seed2BA(), func(srv *refreshtest.Server, rt string) *http.Request {
			return form(strings.Replace(srv.TokenURL, "/OAuth/Token", "/oauth/token", 1), twoBAForm(rt))
		}, 404, "", ""},
		{"partner: form body", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			r := form(srv.TokenURL, url.Values{"refreshToken": {rt}})
			for k, v := range partnerHeader {
				r.Header[k] = v
			}
			return r
		}, 400, "invalid_request", "application/json"},
		{"partner: grant_type in the body", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			return jsonReq(srv.TokenURL, `{"refreshToken":"`+rt+`","grant_type":"refresh_token"}`, partnerHeader)
		}, 400, "invalid_request", "nothing else"},
		{"partner: grant_type header", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			return jsonReq(srv.TokenURL, partnerBody(rt), http.Header{"Partnerid": {partnerID}, "Grant_type": {"refresh_token"}})
		}, 400, "invalid_request", "grantType"},
		{"partner: wrong partnerId", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			return jsonReq(srv.TokenURL, partnerBody(rt), http.Header{"Partnerid": {"4712"}, "Granttype": {"refresh_token"}})
		}, 400, "invalid_request", "partnerId"},
		{"partner: refresh_token member", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			return jsonReq(srv.TokenURL, `{"refresh_token":"`+rt+`"}`, partnerHeader)
		}, 400, "invalid_request", "Missing refresh token"},
		{"partner: partner-id look-alike", seedPartner(), func(srv *refreshtest.Server, rt string) *http.Request {
			h := partnerHeader.Clone()
			h.Set("Partner-Id", partnerID)
			return jsonReq(srv.TokenURL, partnerBody(rt), h)
		}, 400, "invalid_request", "Partner-Id"},
	}
	for _, tt := range strict {
		t.Run(tt.name, func(t *testing.T) {
			var rec recorder
			o := tt.opts
			o.OnTokenRequest = rec.add
			srv := newServer(t, o)
			r := do(t, nil, tt.req(srv, srv.Token().RefreshToken))
			if r.status == http.StatusOK {
				t.Errorf("got HTTP 200 from the %s dialect, want a refusal", o.TokenPath)
			}
			if r.status != tt.status {
				t.Errorf("got HTTP %d %s, want %d", r.status, r.body, tt.status)
			}
			evs := rec.take()
			switch {
			case tt.code == "":
				if len(evs) != 0 {
					t.Errorf("got events %s, want none for a request to another path", briefs(evs))
				}
			case len(evs) != 1 || evs[0].Kind != refreshtest.TokenRefused || evs[0].Code != tt.code ||
				!strings.Contains(evs[0].Description, tt.mention):
				t.Errorf("got events %s %+v, want one refusal %s mentioning %q", briefs(evs), evs, tt.code, tt.mention)
			}
			if st := srv.Stats(); st.Refreshes != 0 {
				t.Errorf("got %+v, want no refresh", st)
			}
		})
	}

	// The library, configured as a user of each seed API configures it
	// (the refresh package's seed tests use the same configurations),
	// spends the login's refresh token; presenting it again is a reuse.
	reuse := []struct {
		name   string
		opts   refreshtest.Options
		config func(*refreshtest.Server) refresh.Config
	}{
		{"gw2", seedGW2(), func(srv *refreshtest.Server) refresh.Config {
			return refresh.Config{OAuth2: &oauth2.Config{ClientID: gw2ID, ClientSecret: gw2Secret,
				Endpoint: oauth2.Endpoint{TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}}
		}},
		{"gw2 raw Basic", seedGW2Raw(), func(srv *refreshtest.Server) refresh.Config {
			return refresh.Config{Endpoint: &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: gw2RawID, ClientSecret: gw2RawSecret,
				Auth: refresh.AuthBasicRaw}}
		}},
		{"wso2", seedWSO2(), func(srv *refreshtest.Server) refresh.Config {
			return refresh.Config{Endpoint: &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: wso2ID, ClientSecret: wso2Secret,
				Auth: refresh.AuthBasic, Scope: "PRODUCTION"}}
		}},
		{"2ba", seed2BA(), func(srv *refreshtest.Server) refresh.Config {
			return refresh.Config{OAuth2: &oauth2.Config{ClientID: twoBAID, ClientSecret: twoBASecret,
				Endpoint: oauth2.Endpoint{TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}}
		}},
		{"partner", seedPartner(), func(srv *refreshtest.Server) refresh.Config {
			return refresh.Config{Endpoint: &refresh.JSONEndpoint{URL: srv.TokenURL, Field: "refreshToken",
				Header: http.Header{"partnerId": {partnerID}, "grantType": {"refresh_token"}}}}
		}},
	}
	for _, tt := range reuse {
		t.Run("reuse/"+tt.name, func(t *testing.T) {
			var rec recorder
			o := tt.opts
			o.OnTokenRequest = rec.add
			srv := newServer(t, o)
			c := tt.config(srv)
			c.RefreshAttempts = 3 // a refusal misread as temporary would be retried
			e, err := refresh.New(c)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			login := srv.Token()
			if err := e.SetToken(ctx, "", login); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Refresh(ctx, "", nil); err != nil {
				t.Fatalf("first refresh: %v", err)
			}
			if err := e.SetToken(ctx, "", login); err != nil { // as a client that lost the rotation
				t.Fatal(err)
			}
			_, err = e.Refresh(ctx, "", nil)
			var x *refresh.Error
			if !errors.As(err, &x) || x.Code != "invalid_grant" {
				t.Errorf("reuse: got %v, want invalid_grant", err)
			}
			if got := srv.Stats().Reuses; got != 1 {
				t.Errorf("got %d reuses counted, want 1", got)
			}
			if cur := srv.Current(login.RefreshToken); cur != nil {
				t.Errorf("after the reuse: got tokens %q, %q still valid, want the family revoked", cur.AccessToken, cur.RefreshToken)
			}
			if evs := rec.take(); briefs(evs) != "TokenGranted 1/0→1; TokenReuse 1/0 invalid_grant reuse revoked" {
				t.Errorf("got events %s, want one grant and one reuse that revoked the family", briefs(evs))
			}
		})
	}
}
