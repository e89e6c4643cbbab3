package refresh

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh/internal/leakscan"
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// revoker is a FormEndpoint for srv, authenticating as its options say.
func revoker(srv *testServer) *FormEndpoint {
	o := srv.opts
	ep := &FormEndpoint{TokenURL: srv.TokenURL, RevocationURL: srv.RevocationURL, ClientID: refreshtest.DefaultClientID}
	switch {
	case o.Public:
	case o.Auth == refreshtest.AuthBody:
		ep.ClientSecret, ep.Auth = refreshtest.DefaultClientSecret, AuthInBody
	case o.Auth == refreshtest.AuthBasic:
		ep.ClientSecret, ep.Auth = refreshtest.DefaultClientSecret, AuthBasic
	case o.Auth == refreshtest.AuthBasicRaw:
		ep.ClientSecret, ep.Auth = refreshtest.DefaultClientSecret, AuthBasicRaw
	}
	return ep
}

// TestRevokeEachClientAuth: in each style of client authentication, against
// a strict server that accepts only that style, exactly encoded, and no
// parameter beyond RFC 7009's, Revoke ends the refresh token's grant: the
// engine's next refresh needs a new login and the API refuses the access
// token.
func TestRevokeEachClientAuth(t *testing.T) {
	for _, o := range []refreshtest.Options{
		{Auth: refreshtest.AuthBody}, {Auth: refreshtest.AuthBasic}, {Auth: refreshtest.AuthBasicRaw}, {Public: true},
	} {
		o.Strict = true
		name := o.Auth.String()
		if o.Public {
			name = "Public"
		}
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, o)
			ep := revoker(srv)
			e := newEngine(t, srv, Config{Endpoint: ep})
			if err := ep.Revoke(t.Context(), srv.token()); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if st := srv.Stats(); st.Revocations != 1 || st.RevocationRequests != 1 {
				t.Errorf("server counted %d revocations of %d requests, want 1 of 1", st.Revocations, st.RevocationRequests)
			}
			if status, _, err := get(t, e.Client(nil), srv.URL+"/v1/me"); !errors.Is(err, ErrReauthRequired) {
				t.Errorf("request after Revoke: status %d, err %v; want ErrReauthRequired", status, err)
			}
			if st := srv.Stats(); st.InvalidGrant != 1 || st.Served401 != 1 {
				t.Errorf("server refused %d refreshes and answered %d 401s, want 1 and 1", st.InvalidGrant, st.Served401)
			}
		})
	}
}

// TestRevokeWire pins the request: a form POST of token and
// token_type_hint (refresh_token, or access_token for a token without a
// refresh token), the endpoint's Header and Accept, and nothing of the
// refresh grant.
func TestRevokeWire(t *testing.T) {
	var got *http.Request
	var form url.Values
	srv := &scripted{answer: func(r *http.Request, _ int) *http.Response {
		got = r
		b, _ := io.ReadAll(r.Body)
		form, _ = url.ParseQuery(string(b))
		return response(r, http.StatusOK, nil, "")
	}}
	ep := &FormEndpoint{TokenURL: "https://as.test/token", RevocationURL: "https://as.test/revoke", ClientID: "id", ClientSecret: "s&c", Auth: AuthInBody,
		Scope: "PRODUCTION", Params: url.Values{"resource": {"https://api.test"}}, Header: http.Header{"partnerId": {"4711"}}, HTTPClient: srv.client()}
	for _, tc := range []struct {
		tok  *oauth2.Token
		want url.Values
	}{
		{&oauth2.Token{AccessToken: "AT", RefreshToken: "RT +/="}, url.Values{"token": {"RT +/="}, "token_type_hint": {"refresh_token"}}},
		{&oauth2.Token{AccessToken: "AT +/="}, url.Values{"token": {"AT +/="}, "token_type_hint": {"access_token"}}},
	} {
		if err := ep.Revoke(t.Context(), tc.tok); err != nil {
			t.Fatal(err)
		}
		tc.want.Set("client_id", "id")
		tc.want.Set("client_secret", "s&c")
		if form.Encode() != tc.want.Encode() {
			t.Errorf("body %q, want %q", form.Encode(), tc.want.Encode())
		}
		if got.Method != http.MethodPost || got.URL.String() != ep.RevocationURL || got.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			got.Header.Get("Accept") != "application/json" || got.Header["partnerId"][0] != "4711" {
			t.Errorf("%s %s, headers %v", got.Method, got.URL, got.Header)
		}
	}
	if err := ep.Revoke(t.Context(), &oauth2.Token{}); err == nil || srv.count() != 2 {
		t.Errorf("a token without values: err %v after %d requests, want an error and no request", err, srv.count())
	}
}

// TestRevokeAnswers pins the classification of the revocation endpoint's
// answers: what is revoked, what is temporary, what is the client's
// configuration, and that none of them asks for a new login.
func TestRevokeAnswers(t *testing.T) {
	type want struct {
		ok, temporary, config bool
		code                  string
	}
	html := http.Header{"Content-Type": {"text/html"}}
	for _, tc := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   want
	}{
		{"200, empty", 200, nil, ``, want{ok: true}},
		{"200, any body", 200, html, `<html>bye</html>`, want{ok: true}},
		{"204", 204, nil, ``, want{ok: true}},
		{"503", 503, nil, ``, want{temporary: true}},
		{"503 with a code (RFC 7009 §2.2.1)", 503, nil, `{"error":"invalid_request"}`, want{temporary: true, code: "invalid_request"}},
		{"502 HTML", 502, html, `<html>bad gateway</html>`, want{temporary: true}},
		{"500 server_error", 500, nil, `{"error":"server_error"}`, want{temporary: true, code: "server_error"}},
		{"429", 429, http.Header{"Retry-After": {"2"}}, ``, want{temporary: true}},
		{"408", 408, nil, ``, want{temporary: true}},
		{"400 unsupported_token_type", 400, nil, `{"error":"unsupported_token_type"}`, want{code: "unsupported_token_type"}},
		{"500 unsupported_token_type (gw2.me)", 500, nil, `{"error":"unsupported_token_type"}`, want{code: "unsupported_token_type"}},
		{"400 invalid_request", 400, nil, `{"error":"invalid_request"}`, want{code: "invalid_request"}},
		{"400 without code", 400, html, `<html>Bad Request</html>`, want{}},
		{"401 invalid_client", 401, nil, `{"error":"invalid_client"}`, want{config: true, code: "invalid_client"}},
		{"500 invalid_client (gw2.me)", 500, nil, `{"error":"invalid_client"}`, want{config: true, code: "invalid_client"}},
		{"400 unauthorized_client", 400, nil, `{"error":"unauthorized_client"}`, want{config: true, code: "unauthorized_client"}},
		{"401 without code", 401, nil, ``, want{config: true}},
		{"404 HTML", 404, html, `<html>Not Found</html>`, want{config: true}},
		{"410", 410, nil, ``, want{}},
		{"400 malformed code", 400, nil, `{"error":"bad\"code"}`, want{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fixed(tc.status, tc.header, tc.body)
			ep := &FormEndpoint{TokenURL: "https://as.test/token", RevocationURL: "https://as.test/revoke", HTTPClient: srv.client()}
			err := ep.Revoke(t.Context(), &oauth2.Token{AccessToken: "AT", RefreshToken: "RT"})
			if tc.want.ok {
				if err != nil {
					t.Errorf("err = %v, want nil", err)
				}
				return
			}
			var x *Error
			if !errors.As(err, &x) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if x.Temporary() != tc.want.temporary || errors.Is(err, ErrClientConfig) != tc.want.config || x.Code != tc.want.code {
				t.Errorf("Temporary %v, ErrClientConfig %v, Code %q; want %v, %v, %q (%v)",
					x.Temporary(), errors.Is(err, ErrClientConfig), x.Code, tc.want.temporary, tc.want.config, tc.want.code, err)
			}
			if x.StatusCode != tc.status || errors.Is(err, ErrReauthRequired) || errors.Is(err, ErrNoRevocation) {
				t.Errorf("StatusCode %d, want %d; no ErrReauthRequired, no ErrNoRevocation (%v)", x.StatusCode, tc.status, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "refresh: ") || !strings.Contains(msg, "revocation endpoint") {
				t.Errorf("message %q: want it to start with refresh: and name the revocation endpoint", msg)
			}
			// The engine's classification of refreshes leaves it as it
			// is, whoever passes it there.
			if c := classify("k", err, &oauth2.Token{}); c.Key != "k" || c.Temporary() != x.Temporary() || errors.Is(c, ErrReauthRequired) {
				t.Errorf("classify: key %q, Temporary %v, ErrReauthRequired %v; want k, %v, false", c.Key, c.Temporary(), errors.Is(c, ErrReauthRequired), x.Temporary())
			}
		})
	}
}

// TestRevokeServerFaults: against refreshtest, a 503 and a reset are
// temporary and revoke nothing, a hung server ends with the caller's
// context, a body that never ends does not hold up a revocation that
// succeeded, and a server that revokes only refresh tokens answers
// unsupported_token_type for an access token.
func TestRevokeServerFaults(t *testing.T) {
	srv := newServer(t, refreshtest.Options{RevokeRefreshTokensOnly: true})
	ep := revoker(srv)
	tok := srv.logIn()
	for _, f := range []refreshtest.Faults{{Rate: 1}, {Rate: 1, Kind: refreshtest.FaultReset}, {Rate: 1, Kind: refreshtest.FaultHang}} {
		srv.SetFaults(f)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		err := ep.Revoke(ctx, tok)
		cancel()
		var x *Error
		if !errors.As(err, &x) || !x.Temporary() {
			t.Errorf("%v: err = %v, want a temporary *Error", f.Kind, err)
		}
	}
	if srv.token() == nil {
		t.Fatalf("a failed revocation revoked the grant")
	}
	srv.SetFaults(refreshtest.Faults{})
	err := ep.Revoke(t.Context(), &oauth2.Token{AccessToken: tok.AccessToken})
	var x *Error
	if !errors.As(err, &x) || x.Code != "unsupported_token_type" || x.Temporary() {
		t.Errorf("access token: err = %v, want a final unsupported_token_type *Error", err)
	}
	srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultSlowBody, AfterGrant: true})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := ep.Revoke(ctx, tok); err != nil || ctx.Err() != nil || srv.token() != nil {
		t.Errorf("refresh token, slow 200: err %v, context %v, grant revoked %v; want nil, nil, true", err, ctx.Err(), srv.token() == nil)
	}
}

// TestRevokeNoSecretsInErrors: servers that quote the token and the client
// secret in their error pages and descriptions, and a refused connection to
// a URL holding the token, never get either into an error, in any encoding.
func TestRevokeNoSecretsInErrors(t *testing.T) {
	const rt, at, secret = "rt-1-0-0123456789abcdef", "at-1-0-0123456789abcdef", "client-secret-value"
	tok := &oauth2.Token{AccessToken: at, RefreshToken: rt}
	quote := rt + " " + url.QueryEscape(secret) + " " + at
	type revocation struct {
		ep  *FormEndpoint
		tok *oauth2.Token
	}
	var cases []revocation
	for _, s := range []*scripted{
		fixed(400, nil, `{"error":"unsupported_token_type","error_description":"not `+quote+`","error_uri":"https://as.test/e?t=`+rt+`"}`),
		fixed(404, http.Header{"Content-Type": {"text/html"}}, `<html><body>`+quote+` cannot be revoked</body></html>`),
		fixed(503, http.Header{"Content-Type": {"text/plain"}}, quote),
	} {
		cases = append(cases, revocation{&FormEndpoint{TokenURL: "https://as.test/token", RevocationURL: "https://as.test/revoke", ClientID: "id",
			ClientSecret: secret, Auth: AuthInBody, HTTPClient: s.client()}, tok})
	}
	// An HTML page quoting the access token it refuses and the client's
	// secret; a refused connection, whose error names the URL.
	html := newServer(t, refreshtest.Options{Errors: refreshtest.ErrorsHTML, RevokeRefreshTokensOnly: true})
	cases = append(cases, revocation{revoker(html), &oauth2.Token{AccessToken: html.Token().AccessToken}},
		revocation{&FormEndpoint{TokenURL: "http://127.0.0.1:1/token", RevocationURL: "http://127.0.0.1:1/revoke?t=" + rt}, tok})
	sc := leakscan.New(rt, at, secret, refreshtest.DefaultClientSecret)
	for i, c := range cases {
		err := c.ep.Revoke(t.Context(), c.tok)
		var x *Error
		if !errors.As(err, &x) {
			t.Fatalf("case %d: err = %v, want *Error", i, err)
		}
		for _, text := range []string{err.Error(), x.Description, x.URI, x.BodySnippet} {
			for _, l := range sc.Scan(text) {
				t.Errorf("case %d: %s in %q", i, l, text)
			}
		}
	}
}

// TestRevokeUnsupported: a FormEndpoint without a RevocationURL (one built
// from Config.OAuth2 among them) is a Revoker whose Revoke says it cannot,
// at once and without a request; a JSONEndpoint is no Revoker.
func TestRevokeUnsupported(t *testing.T) {
	srv := fixed(200, nil, "")
	fromOAuth2, err := oauth2Endpoint(&oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "https://as.test/token", AuthStyle: oauth2.AuthStyleInParams}}, srv.client())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range []Endpoint{&FormEndpoint{TokenURL: "https://as.test/token", HTTPClient: srv.client()}, fromOAuth2} {
		r, ok := ep.(Revoker)
		if !ok {
			t.Fatalf("%T is not a Revoker", ep)
		}
		err := r.Revoke(t.Context(), &oauth2.Token{RefreshToken: "RT"})
		var x *Error
		if !errors.Is(err, ErrNoRevocation) || !errors.As(err, &x) || x.Temporary() {
			t.Errorf("err = %v, want a final *Error wrapping ErrNoRevocation", err)
		}
	}
	if srv.count() != 0 {
		t.Errorf("%d requests, want none", srv.count())
	}
	if _, ok := Endpoint(&JSONEndpoint{}).(Revoker); ok {
		t.Errorf("JSONEndpoint is a Revoker")
	}
}

// TestRevocationURLChecked: Revoke refuses an endpoint that New would
// refuse (TestEndpointURLs), without a request.
func TestRevocationURLChecked(t *testing.T) {
	srv := fixed(200, nil, "")
	ep := &FormEndpoint{TokenURL: "https://as.example/token", RevocationURL: "http://as.example/revoke", HTTPClient: srv.client()}
	err := ep.Revoke(t.Context(), &oauth2.Token{RefreshToken: "RT"})
	if !errors.Is(err, ErrClientConfig) || !strings.Contains(err.Error(), "revocation endpoint URL uses http://") || srv.count() != 0 {
		t.Errorf("http:// RevocationURL: err = %v after %d requests, want ErrClientConfig and none", err, srv.count())
	}
}
