package refreshtest_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// exchangeForm is a token exchange of the access token subject, with the
// default credentials in the body and the parameters kv: name, value…
func exchangeForm(subject string, kv ...string) url.Values {
	f := ccForm(kv...)
	f.Set("grant_type", refreshtest.GrantTokenExchange)
	f.Set("subject_token", subject)
	f.Set("subject_token_type", refreshtest.TokenTypeAccessToken)
	return f
}

// postExchange sends exchangeForm(subject, kv...) and returns the answer.
func postExchange(t *testing.T, srv *refreshtest.Server, subject string, kv ...string) reply {
	t.Helper()
	return do(t, nil, formRequest(t, srv, exchangeForm(subject, kv...)))
}

// TestTokenExchange: a live access token is exchanged for the access token
// of a new grant, which the API accepts; the answer says what it issued and
// has no refresh token; the event names the subject's grant and pair, the
// actor's grant and the new grant, and no token.
func TestTokenExchange(t *testing.T) {
	var rec recorder
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add})
	tok, actor := srv.Token(), srv.Token()
	subject, _ := mustRefresh(t, srv, tok.RefreshToken) // pair 1 of grant 1
	r := postExchange(t, srv, subject, "audience", "svc-b", "actor_token", actor.AccessToken,
		"actor_token_type", refreshtest.TokenTypeAccessToken, "requested_token_type", refreshtest.TokenTypeAccessToken)
	at := r.str("access_token")
	if r.status != 200 || !strings.HasPrefix(at, "at-3-0-") || r.str("issued_token_type") != refreshtest.TokenTypeAccessToken ||
		r.str("token_type") != "bearer" || r.fields["expires_in"] != 3600.0 {
		t.Fatalf("got %d %s, want 200, grant 3's access token, its type, bearer, 3600 s", r.status, r.body)
	}
	noMembers(t, r, "refresh_token", "scope")
	if a := api(t, srv, http.MethodGet, "/x", at, ""); a.status != 200 || a.header.Get(refreshtest.GrantHeader) != "3" {
		t.Errorf("API: got %d grant %q, want 200 grant 3", a.status, a.header.Get(refreshtest.GrantHeader))
	}
	// The exchanged token is a subject like any other; a scope asked for
	// replaces the subject's, and an exchange that asks for none keeps it.
	r = postExchange(t, srv, at, "scope", "read")
	if !strings.HasPrefix(r.str("access_token"), "at-4-0-") || r.str("scope") != "read" {
		t.Errorf("exchanging the exchanged token: got %d %s, want grant 4 with scope read", r.status, r.body)
	}
	if r := postExchange(t, srv, r.str("access_token")); r.str("scope") != "read" {
		t.Errorf("no scope asked for: got %d %s, want the subject's scope read", r.status, r.body)
	}

	evs := rec.take()
	if len(evs) != 4 {
		t.Fatalf("got %d events, want 4", len(evs))
	}
	ev := evs[1]
	if got, want := briefs(evs[1:]), "TokenGranted 1/1→3/0; TokenGranted 3/0→4/0; TokenGranted 4/0→5/0"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if ev.GrantType != refreshtest.GrantTokenExchange || ev.Actor != 2 || !slices.Equal(ev.Audience, []string{"svc-b"}) || ev.Scope != "" {
		t.Errorf("got %+v, want the grant type, actor grant 2, audience svc-b, no scope asked for", ev)
	}
	if s := fmt.Sprintf("%#v", ev); strings.Contains(s, subject) || strings.Contains(s, actor.AccessToken) || strings.Contains(s, at) {
		t.Errorf("the event holds a token: %s", s)
	}
	want := refreshtest.Stats{Grants: 2, TokenRequests: 4, Refreshes: 1, Rotations: 1, TokenExchanges: 3, APIRequests: 1, Served200: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestTokenExchangeInvalidGrant: a subject or actor token that the server
// did not issue, or that expired or was revoked, is refused with
// invalid_grant and starts no grant.
func TestTokenExchangeInvalidGrant(t *testing.T) {
	clk := newClock()
	srv := newServer(t, refreshtest.Options{Lifetime: time.Minute, Now: clk.Now})
	live := func() string { return srv.Token().AccessToken }
	for _, tc := range []struct {
		name    string
		subject func() string
		kv      func() []string
		desc    string
	}{
		{"unknown", func() string { return "at-1-0-guess" }, nil, "is unknown"},
		{"a refresh token", func() string { return srv.Token().RefreshToken }, nil, "is unknown"},
		{"expired", func() string { at := live(); clk.Advance(time.Minute); return at }, nil, "has expired"},
		{"revoked", func() string { at := live(); srv.Revoke(at); return at }, nil, "was revoked"},
		{"access tokens revoked", func() string { at := live(); srv.RevokeAccessTokens(); return at }, nil, "was revoked"},
		{"grant revoked", func() string { tok := srv.Token(); srv.Revoke(tok.RefreshToken); return tok.AccessToken }, nil, "was revoked"},
		{"family revoked by a reuse", func() string {
			tok := srv.Token()
			at, _ := mustRefresh(t, srv, tok.RefreshToken)
			postRefresh(t, srv, tok.RefreshToken)
			return at
		}, nil, "was revoked"},
		{"dead actor", live, func() []string {
			at := live()
			srv.Revoke(at)
			return []string{"actor_token", at, "actor_token_type", refreshtest.TokenTypeAccessToken}
		}, "actor token was revoked"},
	} {
		subject := tc.subject()
		var kv []string
		if tc.kv != nil {
			kv = tc.kv()
		}
		before := srv.Stats()
		r := postExchange(t, srv, subject, kv...)
		st := srv.Stats()
		if r.status != 400 || r.code() != "invalid_grant" || !strings.Contains(r.str("error_description"), tc.desc) {
			t.Errorf("%s: got %d %s, want 400 invalid_grant saying %q", tc.name, r.status, r.body, tc.desc)
		}
		if st.InvalidGrant != before.InvalidGrant+1 || st.TokenExchanges != 0 {
			t.Errorf("%s: got %+v, want one more invalid_grant and no exchange", tc.name, st)
		}
	}
}

// TestTokenExchangeInvalidRequest: token parameters that are missing, of a
// type the server does not issue, or without their type are refused with
// invalid_request, before any token is looked at.
func TestTokenExchangeInvalidRequest(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	at := srv.Token().AccessToken
	const jwt = "urn:ietf:params:oauth:token-type:jwt"
	for _, tc := range []struct {
		name string
		edit func(url.Values)
	}{
		{"no subject_token", func(f url.Values) { f.Del("subject_token") }},
		{"no subject_token_type", func(f url.Values) { f.Del("subject_token_type") }},
		{"a JWT subject", func(f url.Values) { f.Set("subject_token_type", jwt) }},
		{"a refresh token subject", func(f url.Values) {
			f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
		}},
		{"actor_token without its type", func(f url.Values) { f.Set("actor_token", at) }},
		{"actor_token_type alone", func(f url.Values) { f.Set("actor_token_type", refreshtest.TokenTypeAccessToken) }},
		{"a JWT actor", func(f url.Values) { f.Set("actor_token", at); f.Set("actor_token_type", jwt) }},
		{"a JWT requested", func(f url.Values) { f.Set("requested_token_type", jwt) }},
		{"repeated subject", func(f url.Values) { f.Add("subject_token", at) }},
	} {
		f := exchangeForm(at)
		tc.edit(f)
		if r := do(t, nil, formRequest(t, srv, f)); r.status != 400 || r.code() != "invalid_request" {
			t.Errorf("%s: got %d %s, want 400 invalid_request", tc.name, r.status, r.body)
		}
	}
	if st := srv.Stats(); st.InvalidRequest != 9 || st.TokenExchanges != 0 {
		t.Errorf("got %+v, want 9 invalid_request, no exchange", st)
	}
}

// TestTokenExchangeIndependent: the exchanged token's grant does not
// descend from the subject's: revoking either leaves the other live.
func TestTokenExchangeIndependent(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	at := postExchange(t, srv, tok.AccessToken).str("access_token")
	srv.Revoke(tok.RefreshToken) // the subject's whole grant
	if apiStatus(t, srv, tok.AccessToken) != 401 || apiStatus(t, srv, at) != 200 {
		t.Errorf("subject's grant revoked: want the subject refused and the exchanged token accepted")
	}
	tok = srv.Token()
	at = postExchange(t, srv, tok.AccessToken).str("access_token")
	srv.Revoke(at)
	if apiStatus(t, srv, tok.AccessToken) != 200 || apiStatus(t, srv, at) != 401 {
		t.Errorf("exchanged token revoked: want the subject accepted and the exchanged token refused")
	}
}

// TestTokenExchangeOptions: GrantOptions apply to token exchange as to
// client credentials, and a public client may exchange.
func TestTokenExchangeOptions(t *testing.T) {
	srv := newServer(t, refreshtest.Options{TokenExchange: refreshtest.GrantOptions{RefreshTokens: true}})
	r := postExchange(t, srv, srv.Token().AccessToken)
	if rt := r.str("refresh_token"); !strings.HasPrefix(rt, "rt-2-0-") {
		t.Fatalf("RefreshTokens: got %s, want grant 2's refresh token", r.body)
	} else if at, _ := mustRefresh(t, srv, rt); !strings.HasPrefix(at, "at-2-1-") {
		t.Errorf("refreshing the exchanged grant: got %s, want pair 1 of grant 2", at)
	}

	for _, tc := range []struct {
		name string
		opts refreshtest.GrantOptions
		kv   []string
		code string
	}{
		{"Unauthorized", refreshtest.GrantOptions{Unauthorized: true}, nil, "unauthorized_client"},
		{"Scopes", refreshtest.GrantOptions{Scopes: []string{"read"}}, []string{"scope", "write"}, "invalid_scope"},
		{"Audiences", refreshtest.GrantOptions{Audiences: []string{"svc"}}, []string{"audience", "svc", "resource", "https://x.example/"}, "invalid_target"},
	} {
		srv := newServer(t, refreshtest.Options{TokenExchange: tc.opts})
		if r := postExchange(t, srv, srv.Token().AccessToken, tc.kv...); r.status != 400 || r.code() != tc.code {
			t.Errorf("%s: got %d %s, want 400 %s", tc.name, r.status, r.body, tc.code)
		}
		if r := postCC(t, srv, tc.kv...); r.status != 200 {
			t.Errorf("%s: client credentials got %d %s, want 200: the options are the exchange's", tc.name, r.status, r.body)
		}
	}

	pub := newServer(t, refreshtest.Options{Public: true})
	f := exchangeForm(pub.Token().AccessToken)
	f.Del("client_secret")
	if r := do(t, nil, formRequest(t, pub, f)); r.status != 200 {
		t.Errorf("public client: got %d %s, want 200", r.status, r.body)
	}
}

// TestTokenExchangeStrictAndStyles: Options.Strict refuses parameters the
// grant does not define; error styles, faults and the gate apply as to
// refreshes, and an ErrorsHTML page quotes the subject token.
func TestTokenExchangeStrictAndStyles(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true})
	at := srv.Token().AccessToken
	if r := postExchange(t, srv, at, "refresh_token", "x"); r.code() != "invalid_request" {
		t.Errorf("strict, refresh_token: got %d %s, want invalid_request", r.status, r.body)
	}
	every := []string{"scope", "a", "audience", "b", "audience", "c", "resource", "https://d.example/",
		"requested_token_type", refreshtest.TokenTypeAccessToken,
		"actor_token", at, "actor_token_type", refreshtest.TokenTypeAccessToken}
	if r := postExchange(t, srv, at, every...); r.status != 200 {
		t.Errorf("strict, every parameter defined: got %d %s, want 200", r.status, r.body)
	}

	srv = newServer(t, refreshtest.Options{Errors: refreshtest.Errors500})
	if r := postExchange(t, srv, "at-9-9-unknown"); r.status != 500 || r.code() != "invalid_grant" {
		t.Errorf("Errors500: got %d %s, want 500 invalid_grant", r.status, r.body)
	}
	srv = newServer(t, refreshtest.Options{Errors: refreshtest.ErrorsHTML})
	dead := srv.Token().AccessToken
	srv.Revoke(dead)
	if r := postExchange(t, srv, dead); r.status != 400 || !strings.Contains(r.body, dead) || strings.Contains(r.body, "invalid_grant") {
		t.Errorf("ErrorsHTML: got %d %s, want 400, the subject quoted, no code", r.status, r.body)
	}

	var rec recorder
	srv = newServer(t, refreshtest.Options{OnTokenRequest: rec.add, Faults: refreshtest.Faults{Rate: 1, AfterGrant: true}})
	at = srv.Token().AccessToken
	if r := postExchange(t, srv, at); r.status != 503 {
		t.Errorf("AfterGrant: got %d, want 503", r.status)
	}
	srv.SetFaults(refreshtest.Faults{})
	g := srv.Hold()
	replies := make(chan reply)
	go func() { replies <- postExchange(t, srv, at) }()
	<-g.Reached()
	if st := srv.Stats(); st.TokenExchanges != 1 || st.Faults != 1 {
		t.Errorf("held: got %+v, want the dropped exchange and its fault", st)
	}
	g.Release()
	if r := <-replies; r.status != 200 || !strings.HasPrefix(r.str("access_token"), "at-3-0-") {
		t.Errorf("released: got %d %s, want grant 3", r.status, r.body)
	}
	if got, want := briefs(rec.take()), "TokenGranted 1/0→2/0 dropped FaultUnavailable; TokenGranted 1/0→3/0"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
