package refreshtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/refreshtest"
)

// ccForm is a client-credentials request with the default credentials in
// the body and the parameters kv: name, value, name, value…
func ccForm(kv ...string) url.Values {
	f := url.Values{
		"grant_type":    {refreshtest.GrantClientCredentials},
		"client_id":     {refreshtest.DefaultClientID},
		"client_secret": {refreshtest.DefaultClientSecret},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// postCC sends ccForm(kv...) and returns the answer.
func postCC(t *testing.T, srv *refreshtest.Server, kv ...string) reply {
	t.Helper()
	return do(t, nil, formRequest(t, srv, ccForm(kv...)))
}

// noMembers reports the members of r, among names, that it has.
func noMembers(t *testing.T, r reply, names ...string) {
	t.Helper()
	for _, k := range names {
		if _, ok := r.fields[k]; ok {
			t.Errorf("got member %s in %s, want none", k, r.body)
		}
	}
}

// TestClientCredentials: a client-credentials request gets the access token
// of a grant of its own, without a refresh token, which the API accepts.
func TestClientCredentials(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	r := postCC(t, srv)
	at := r.str("access_token")
	if r.status != 200 || !strings.HasPrefix(at, "at-1-0-") || r.str("token_type") != "bearer" ||
		r.fields["expires_in"] != 3600.0 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("got %d %s %v, want 200, an access token of grant 1, bearer, 3600 s, no-store", r.status, r.body, r.header)
	}
	noMembers(t, r, "refresh_token", "scope", "issued_token_type")
	if a := api(t, srv, http.MethodGet, "/x", at, ""); a.status != 200 || a.header.Get(refreshtest.GrantHeader) != "1" {
		t.Errorf("API: got %d grant %q, want 200 grant 1", a.status, a.header.Get(refreshtest.GrantHeader))
	}
	if r := postCC(t, srv); !strings.HasPrefix(r.str("access_token"), "at-2-0-") {
		t.Errorf("second request: got %s, want grant 2's token", r.body)
	}
	want := refreshtest.Stats{TokenRequests: 2, ClientCredentialsGrants: 2, APIRequests: 1, Served200: 1}
	if got := srv.Stats(); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestClientCredentialsClientAuth: the client authenticates in its style and
// no other, as for refreshes; a public client is not allowed the grant.
func TestClientCredentialsClientAuth(t *testing.T) {
	id, secret := refreshtest.DefaultClientID, refreshtest.DefaultClientSecret
	variants := map[string]func(*http.Request){
		"body":      func(*http.Request) {},
		"basic":     func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) },
		"basic raw": func(r *http.Request) { r.SetBasicAuth(id, secret) },
		"id only":   func(*http.Request) {},
	}
	for _, tc := range []struct {
		name, ok string
		opts     refreshtest.Options
	}{
		{"AuthBody", "body", refreshtest.Options{}},
		{"AuthBasic", "basic", refreshtest.Options{Auth: refreshtest.AuthBasic}},
		{"AuthBasicRaw", "basic raw", refreshtest.Options{Auth: refreshtest.AuthBasicRaw}},
		{"Public", "id only", refreshtest.Options{Public: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.opts)
			for name, edit := range variants {
				f := url.Values{"grant_type": {refreshtest.GrantClientCredentials}}
				switch name {
				case "body":
					f = ccForm()
				case "id only":
					f.Set("client_id", id)
				}
				r := do(t, nil, formRequest(t, srv, f, edit))
				wantStatus, wantCode := 401, "invalid_client"
				switch {
				case name == tc.ok && tc.opts.Public:
					wantStatus, wantCode = 400, "unauthorized_client" // RFC 6749 §4.4: confidential clients only
				case name == tc.ok:
					wantStatus, wantCode = 200, ""
				}
				if r.status != wantStatus || r.code() != wantCode {
					t.Errorf("%s: got %d %s, want %d %q", name, r.status, r.body, wantStatus, wantCode)
				}
			}
		})
	}
	// golang.org/x/oauth2/clientcredentials, as it is, in both its styles.
	for _, opts := range []refreshtest.Options{{}, {Auth: refreshtest.AuthBasic}, {Public: true}} {
		srv := newServer(t, opts)
		tok, err := srv.ClientCredentialsConfig().Token(t.Context())
		var rerr *oauth2.RetrieveError
		switch {
		case opts.Public:
			if !errors.As(err, &rerr) || rerr.ErrorCode != "unauthorized_client" {
				t.Errorf("x/oauth2, public: got %v, want unauthorized_client", err)
			}
		case err != nil:
			t.Errorf("x/oauth2, %v: %v", opts.Auth, err)
		case tok.RefreshToken != "" || apiStatus(t, srv, tok.AccessToken) != 200:
			t.Errorf("x/oauth2, %v: got %+v, want an access token the API accepts and no refresh token", opts.Auth, tok)
		}
	}
}

// TestClientCredentialsScopeAndTarget: the scope asked for is echoed
// (Options.Scope if none), within GrantOptions.Scopes; audience and
// resource, repeated or not, within GrantOptions.Audiences.
func TestClientCredentialsScopeAndTarget(t *testing.T) {
	allowed := refreshtest.Options{ClientCredentials: refreshtest.GrantOptions{
		Scopes: []string{"read", "write"}, Audiences: []string{"svc", "https://api.example/"}}}
	for _, tc := range []struct {
		name      string
		opts      refreshtest.Options
		kv        []string
		code      string // "" for a grant
		wantScope string
	}{
		{"no scope", refreshtest.Options{}, nil, "", ""},
		{"Options.Scope", refreshtest.Options{Scope: "PRODUCTION"}, nil, "", "PRODUCTION"},
		{"scope asked for", refreshtest.Options{Scope: "PRODUCTION"}, []string{"scope", "read write"}, "", "read write"},
		{"allowed scopes", allowed, []string{"scope", "write read"}, "", "write read"},
		{"scope not allowed", allowed, []string{"scope", "read admin"}, "invalid_scope", ""},
		{"any targets", refreshtest.Options{}, []string{"audience", "a", "audience", "b", "resource", "https://x.example/"}, "", ""},
		{"allowed targets", allowed, []string{"audience", "svc", "resource", "https://api.example/"}, "", ""},
		{"audience not allowed", allowed, []string{"audience", "svc", "audience", "other"}, "invalid_target", ""},
		{"resource not allowed", allowed, []string{"resource", "https://other.example/"}, "invalid_target", ""},
		{"relative resource", refreshtest.Options{}, []string{"resource", "api"}, "invalid_target", ""},
		{"resource with a fragment", refreshtest.Options{}, []string{"resource", "https://x.example/#a"}, "invalid_target", ""},
	} {
		srv := newServer(t, tc.opts)
		r := postCC(t, srv, tc.kv...)
		switch st := srv.Stats(); {
		case tc.code != "" && (r.status != 400 || r.code() != tc.code || st.InvalidScope+st.InvalidTarget != 1):
			t.Errorf("%s: got %d %s %+v, want 400 %s counted", tc.name, r.status, r.body, st, tc.code)
		case tc.code == "" && (r.status != 200 || r.str("scope") != tc.wantScope):
			t.Errorf("%s: got %d %s, want 200 with scope %q", tc.name, r.status, r.body, tc.wantScope)
		}
	}
	// Only these grants may repeat audience and resource.
	srv := newServer(t, refreshtest.Options{})
	f := refreshForm(srv.Token().RefreshToken)
	f["resource"] = []string{"https://a.example/", "https://b.example/"}
	if r := do(t, nil, formRequest(t, srv, f)); r.code() != "invalid_request" {
		t.Errorf("refresh with two resources: got %d %s, want invalid_request", r.status, r.body)
	}
}

// TestClientCredentialsRefused: a client not allowed the grant gets
// unauthorized_client, in each error style; refreshes go on.
func TestClientCredentialsRefused(t *testing.T) {
	for _, tc := range []struct {
		style  refreshtest.ErrorStyle
		status int
		html   bool
	}{{refreshtest.ErrorsRFC, 400, false}, {refreshtest.Errors500, 500, false}, {refreshtest.ErrorsHTML, 400, true}} {
		srv := newServer(t, refreshtest.Options{Errors: tc.style, ClientCredentials: refreshtest.GrantOptions{Unauthorized: true}})
		r := postCC(t, srv)
		if r.status != tc.status || (r.code() == "unauthorized_client") == tc.html || strings.HasPrefix(r.header.Get("Content-Type"), "text/html") != tc.html {
			t.Errorf("%v: got %d %s, want %d, unauthorized_client unless HTML", tc.style, r.status, r.body, tc.status)
		}
		mustRefresh(t, srv, srv.Token().RefreshToken)
		if st := srv.Stats(); st.UnauthorizedClient != 1 || st.ClientCredentialsGrants != 0 || st.Refreshes != 1 {
			t.Errorf("%v: got %+v, want one unauthorized_client, no grant, one refresh", tc.style, st)
		}
	}
}

// TestClientCredentialsLifetime: the API accepts the token until it expires
// on the server's clock, or until it is revoked in any of the ways a
// login's is.
func TestClientCredentialsLifetime(t *testing.T) {
	clk := newClock()
	srv := newServer(t, refreshtest.Options{Lifetime: 2 * time.Second, Now: clk.Now})
	r := postCC(t, srv)
	if r.fields["expires_in"] != 2.0 {
		t.Errorf("got %s, want expires_in 2", r.body)
	}
	at := r.str("access_token")
	clk.Advance(1999 * time.Millisecond)
	if got := apiStatus(t, srv, at); got != 200 {
		t.Errorf("before expiry: got %d, want 200", got)
	}
	clk.Advance(time.Millisecond)
	if got := apiStatus(t, srv, at); got != 401 {
		t.Errorf("at expiry: got %d, want 401", got)
	}
	for name, end := range map[string]func(at string){
		"RevokeAccessTokens":  func(string) { srv.RevokeAccessTokens() },
		"RevokeGrants":        func(string) { srv.RevokeGrants() },
		"Revoke":              func(at string) { srv.Revoke(at) },
		"revocation endpoint": func(at string) { revoke(t, srv, at, "access_token") },
	} {
		at := postCC(t, srv).str("access_token")
		end(at)
		if got := apiStatus(t, srv, at); got != 401 {
			t.Errorf("%s: got %d, want 401", name, got)
		}
	}
	if st := srv.Stats(); st.Revocations != 1 {
		t.Errorf("got %d revocations, want 1", st.Revocations)
	}
}

// TestClientCredentialsSynctest: x/oauth2's clientcredentials client over
// Transport fetches a new token each time the old one expired on the
// bubble's clock, and the API never answers 401.
func TestClientCredentialsSynctest(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	synctest.Test(t, func(t *testing.T) {
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, &http.Client{Transport: srv.Transport()})
		c := srv.ClientCredentialsConfig().Client(ctx)
		for range 3 {
			if code, err := get(c, srv.URL+"/x"); code != 200 {
				t.Errorf("got %d %v, want 200", code, err)
			}
			time.Sleep(2 * time.Hour) // the token has expired on both clocks
		}
	})
	if st := srv.Stats(); st.ClientCredentialsGrants != 3 || st.Served200 != 3 || st.Served401 != 0 {
		t.Errorf("got %+v, want 3 grants and 3 answers 200", st)
	}
}

// TestClientCredentialsRefreshTokens: GrantOptions.RefreshTokens adds a
// refresh token, which refreshes in the grant with the grant's scope; and
// ClientCredentialsToken gives the token a request would have.
func TestClientCredentialsRefreshTokens(t *testing.T) {
	srv := newServer(t, refreshtest.Options{ClientCredentials: refreshtest.GrantOptions{RefreshTokens: true}})
	r := postCC(t, srv, "scope", "read")
	if !strings.HasPrefix(r.str("refresh_token"), "rt-1-0-") {
		t.Fatalf("got %s, want a refresh token of grant 1", r.body)
	}
	if r := postRefresh(t, srv, r.str("refresh_token")); !strings.HasPrefix(r.str("access_token"), "at-1-1-") || r.str("scope") != "read" {
		t.Errorf("refresh: got %d %s, want pair 1 of grant 1 with scope read", r.status, r.body)
	}
	if tok := srv.ClientCredentialsToken(); !strings.HasPrefix(tok.RefreshToken, "rt-2-0-") {
		t.Errorf("ClientCredentialsToken: got %+v, want a refresh token", tok)
	}

	srv = newServer(t, refreshtest.Options{})
	tok := srv.ClientCredentialsToken()
	if tok.RefreshToken != "" || tok.TokenType != "Bearer" || tok.ExpiresIn != 3600 || tok.Expiry.IsZero() || apiStatus(t, srv, tok.AccessToken) != 200 {
		t.Errorf("ClientCredentialsToken: got %+v, want an access token alone, the API accepts it", tok)
	}
	if st := srv.Stats(); st.Grants != 1 || st.ClientCredentialsGrants != 0 || st.TokenRequests != 0 {
		t.Errorf("got %+v, want 1 grant, no request", st)
	}
}

// TestClientCredentialsFaults: faults and the gate apply as to refreshes.
func TestClientCredentialsFaults(t *testing.T) {
	var rec recorder
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add, Faults: refreshtest.Faults{Rate: 1}})
	if r := postCC(t, srv); r.status != 503 {
		t.Errorf("FaultUnavailable: got %d, want 503", r.status)
	}
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultTooManyRequests, AfterGrant: true})
	if r := postCC(t, srv); r.status != 429 {
		t.Errorf("AfterGrant: got %d, want 429", r.status)
	}
	srv.SetFaults(refreshtest.Faults{})
	g := srv.Hold()
	replies := make(chan reply)
	go func() { replies <- postCC(t, srv) }()
	<-g.Reached()
	if st := srv.Stats(); st.TokenRequests != 3 || st.ClientCredentialsGrants != 1 || st.Faults != 2 {
		t.Errorf("held: got %+v, want 3 requests, the dropped grant, 2 faults", st)
	}
	g.Release()
	if r := <-replies; r.status != 200 || !strings.HasPrefix(r.str("access_token"), "at-2-0-") {
		t.Errorf("released: got %d %s, want grant 2", r.status, r.body)
	}
	want := "TokenFault 0/0 FaultUnavailable; TokenGranted 0/0→1/0 dropped FaultTooManyRequests; TokenGranted 0/0→2/0"
	if got := briefs(rec.take()); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestClientCredentialsStrict: Options.Strict refuses the parameters the
// grant does not define, a refresh token included; without it they are
// ignored.
func TestClientCredentialsStrict(t *testing.T) {
	strict := newServer(t, refreshtest.Options{Strict: true})
	lax := newServer(t, refreshtest.Options{})
	for _, kv := range [][]string{{"refresh_token", "rt-1-0-x"}, {"foo", "bar"}, {"subject_token", "at-1-0-x"}} {
		if r := postCC(t, strict, kv...); r.code() != "invalid_request" || !strings.Contains(r.str("error_description"), kv[0]) {
			t.Errorf("strict, %s: got %d %s, want invalid_request naming it", kv[0], r.status, r.body)
		}
		if r := postCC(t, lax, kv...); r.status != 200 {
			t.Errorf("lax, %s: got %d %s, want 200", kv[0], r.status, r.body)
		}
	}
	if r := postCC(t, strict, "scope", "a", "audience", "b", "audience", "c", "resource", "https://d.example/"); r.status != 200 {
		t.Errorf("strict, every parameter defined: got %d %s, want 200", r.status, r.body)
	}
}

// TestClientCredentialsEvents: an event names the grant type, what was
// asked for and the grant started, and holds no token value.
func TestClientCredentialsEvents(t *testing.T) {
	var rec recorder
	srv := newServer(t, refreshtest.Options{OnTokenRequest: rec.add})
	at := postCC(t, srv, "scope", "read", "audience", "a", "audience", "b", "resource", "https://c.example/").str("access_token")
	postCC(t, srv, "resource", "c")
	postRefresh(t, srv, srv.Token().RefreshToken)
	evs := rec.take()
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	ev := evs[0]
	if ev.GrantType != refreshtest.GrantClientCredentials || ev.Kind != refreshtest.TokenGranted || ev.NewGrant != 1 ||
		ev.Scope != "read" || !slices.Equal(ev.Audience, []string{"a", "b"}) || !slices.Equal(ev.Resource, []string{"https://c.example/"}) {
		t.Errorf("granted: got %+v", ev)
	}
	if s := fmt.Sprintf("%#v", ev); strings.Contains(s, at) || strings.Contains(s, refreshtest.DefaultClientSecret) {
		t.Errorf("the event holds a token or the secret: %s", s)
	}
	if ev := evs[1]; ev.GrantType != refreshtest.GrantClientCredentials || ev.Code != "invalid_target" || ev.NewGrant != 0 {
		t.Errorf("refused: got %+v", ev)
	}
	if ev := evs[2]; ev.GrantType != refreshtest.GrantRefreshToken || ev.Grant != 2 || ev.NewGrant != 2 || ev.NewPair != 1 {
		t.Errorf("refresh: got %+v", ev)
	}
}
