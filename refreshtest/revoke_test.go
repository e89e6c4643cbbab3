package refreshtest_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
)

// revocationForm revokes token with the default credentials in the body;
// hint is sent as token_type_hint unless it is empty.
func revocationForm(token, hint string) url.Values {
	f := url.Values{"token": {token}, "client_id": {refreshtest.DefaultClientID}, "client_secret": {refreshtest.DefaultClientSecret}}
	if hint != "" {
		f.Set("token_type_hint", hint)
	}
	return f
}

// revoke sends a revocation of token and returns the answer.
func revoke(t *testing.T, srv *refreshtest.Server, token, hint string) reply {
	t.Helper()
	return do(t, nil, revocationRequest(t, srv, revocationForm(token, hint)))
}

// TestRevokeRefreshToken: revoking a refresh token ends its whole grant:
// every refresh token of it, spent or live, gets invalid_grant, and the API
// answers 401 to every access token of it; other grants go on.
func TestRevokeRefreshToken(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok, other := srv.Token(), srv.Token()
	at1, rt1 := mustRefresh(t, srv, tok.RefreshToken)

	r := revoke(t, srv, rt1, "refresh_token")
	if r.status != http.StatusOK || r.body != "" {
		t.Fatalf("revocation: got %d %q, want 200 with an empty body", r.status, r.body)
	}
	for _, rt := range []string{rt1, tok.RefreshToken} {
		if r := postRefresh(t, srv, rt); r.status != http.StatusBadRequest || r.code() != "invalid_grant" {
			t.Errorf("refresh after revocation: got %d %s, want 400 invalid_grant", r.status, r.body)
		}
	}
	for _, at := range []string{tok.AccessToken, at1} {
		if got := apiStatus(t, srv, at); got != http.StatusUnauthorized {
			t.Errorf("API with a revoked grant's access token: got %d, want 401", got)
		}
	}
	if got := apiStatus(t, srv, other.AccessToken); got != http.StatusOK {
		t.Errorf("API with another grant's access token: got %d, want 200", got)
	}
	mustRefresh(t, srv, other.RefreshToken)
	if srv.Current(rt1) != nil {
		t.Errorf("Current of a revoked grant is not nil")
	}
	st := srv.Stats()
	if st.RevocationRequests != 1 || st.Revocations != 1 || st.FamiliesRevoked != 0 {
		t.Errorf("got %d revocation requests, %d revocations, %d families revoked by reuse; want 1, 1, 0",
			st.RevocationRequests, st.Revocations, st.FamiliesRevoked)
	}
}

// TestRevokeAccessToken: an access token is revoked alone, whatever the
// hint says (RFC 7009 §2.1: the hint only speeds up the look-up); an
// unknown token is answered 200 and counted as no revocation.
func TestRevokeAccessToken(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	if r := revoke(t, srv, tok.AccessToken, "refresh_token"); r.status != http.StatusOK {
		t.Fatalf("revocation: got %d %s, want 200", r.status, r.body)
	}
	if got := apiStatus(t, srv, tok.AccessToken); got != http.StatusUnauthorized {
		t.Errorf("API with the revoked access token: got %d, want 401", got)
	}
	at1, _ := mustRefresh(t, srv, tok.RefreshToken) // the refresh token lives on
	if got := apiStatus(t, srv, at1); got != http.StatusOK {
		t.Errorf("API with the new access token: got %d, want 200", got)
	}
	if r := revoke(t, srv, "at-9-9-0123456789abcdef", ""); r.status != http.StatusOK {
		t.Errorf("unknown token: got %d %s, want 200", r.status, r.body)
	}
	if st := srv.Stats(); st.RevocationRequests != 2 || st.Revocations != 1 {
		t.Errorf("got %d revocation requests, %d revocations; want 2, 1", st.RevocationRequests, st.Revocations)
	}
}

// TestRevokeRefreshTokensOnly: a server that revokes only refresh tokens
// answers unsupported_token_type for access tokens and leaves them valid.
func TestRevokeRefreshTokensOnly(t *testing.T) {
	srv := newServer(t, refreshtest.Options{RevokeRefreshTokensOnly: true})
	tok := srv.Token()
	for _, tc := range []struct{ token, hint string }{{tok.AccessToken, ""}, {tok.AccessToken, "refresh_token"}, {"unknown-token", "access_token"}} {
		if r := revoke(t, srv, tc.token, tc.hint); r.status != http.StatusBadRequest || r.code() != "unsupported_token_type" {
			t.Errorf("hint %q: got %d %s, want 400 unsupported_token_type", tc.hint, r.status, r.body)
		}
	}
	if got := apiStatus(t, srv, tok.AccessToken); got != http.StatusOK {
		t.Errorf("API after a refused revocation: got %d, want 200", got)
	}
	if r := revoke(t, srv, tok.RefreshToken, "refresh_token"); r.status != http.StatusOK {
		t.Errorf("refresh token: got %d %s, want 200", r.status, r.body)
	}
	if st := srv.Stats(); st.UnsupportedTokenType != 3 || st.Revocations != 1 {
		t.Errorf("got %d unsupported_token_type, %d revocations; want 3, 1", st.UnsupportedTokenType, st.Revocations)
	}
}

// TestRevocationRequests: the revocation endpoint checks its requests as
// strictly as the token endpoint, answers in the Options.Errors style, and
// speaks in memory too.
func TestRevocationRequests(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Strict: true, RevocationPath: "/oauth2/revoke"})
	rt := srv.Token().RefreshToken
	get, _ := http.NewRequest(http.MethodGet, srv.RevocationURL, nil)
	for _, tc := range []struct {
		name   string
		req    *http.Request
		status int
	}{
		{"GET", get, http.StatusMethodNotAllowed},
		{"no token", revocationRequest(t, srv, revocationForm("", "")), http.StatusBadRequest},
		{"query", revocationRequest(t, srv, revocationForm(rt, ""), func(r *http.Request) { r.URL.RawQuery = "token=x" }), http.StatusBadRequest},
		{"JSON", revocationRequest(t, srv, revocationForm(rt, ""), func(r *http.Request) { r.Header.Set("Content-Type", "application/json") }), http.StatusBadRequest},
		{"unknown hint (Strict)", revocationRequest(t, srv, revocationForm(rt, "id_token")), http.StatusBadRequest},
		{"unknown parameter (Strict)", revocationRequest(t, srv, url.Values{"token": {rt}, "scope": {"x"}, "client_id": {refreshtest.DefaultClientID},
			"client_secret": {refreshtest.DefaultClientSecret}}), http.StatusBadRequest},
	} {
		if r := do(t, nil, tc.req); r.status != tc.status || r.code() != "invalid_request" {
			t.Errorf("%s: got %d %s, want %d invalid_request", tc.name, r.status, r.body, tc.status)
		}
	}
	if srv.Current(rt) == nil {
		t.Fatalf("a refused revocation revoked the grant")
	}
	inMemory := &http.Client{Transport: srv.Transport()}
	if r := do(t, inMemory, revocationRequest(t, srv, revocationForm(rt, "refresh_token"))); r.status != http.StatusOK || srv.Current(rt) != nil {
		t.Errorf("in memory: got %d %s, want 200 and the grant revoked", r.status, r.body)
	}

	gw2 := newServer(t, refreshtest.Options{Errors: refreshtest.Errors500})
	if r := do(t, nil, revocationRequest(t, gw2, url.Values{"token": {"x"}})); r.status != http.StatusInternalServerError || r.code() != "invalid_client" {
		t.Errorf("Errors500: got %d %s, want 500 invalid_client", r.status, r.body)
	}
}

// TestRevocationFaults: the server's faults answer revocation requests as
// they answer token requests, in the same count; with AfterGrant the token
// is revoked all the same.
func TestRevocationFaults(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	tok := srv.Token()
	srv.SetFaults(refreshtest.Faults{Rate: 0.5})
	if r := revoke(t, srv, tok.RefreshToken, ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("first request: got %d, want the fault's 503", r.status)
	}
	if srv.Current(tok.RefreshToken) == nil {
		t.Fatalf("a revocation that failed before it was handled revoked the grant")
	}
	mustRefresh(t, srv, tok.RefreshToken) // the second request of the count: handled

	srv.SetFaults(refreshtest.Faults{Rate: 1, AfterGrant: true})
	if r := revoke(t, srv, tok.RefreshToken, ""); r.status != http.StatusServiceUnavailable {
		t.Errorf("AfterGrant: got %d, want the fault's 503", r.status)
	}
	if srv.Current(tok.RefreshToken) != nil {
		t.Errorf("AfterGrant: the grant is not revoked")
	}
	if st := srv.Stats(); st.Faults != 2 || st.RevocationRequests != 2 || st.Revocations != 1 {
		t.Errorf("got %d faults, %d revocation requests, %d revocations; want 2, 2, 1", st.Faults, st.RevocationRequests, st.Revocations)
	}
}
