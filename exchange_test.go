package refresh

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
)

// TestTokenExchangeWire: the grant posts the subject token of another key,
// read anew for each request, with its type, the actor token and the
// requested type, audiences, resources and scope.
func TestTokenExchangeWire(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	users, _ := New(Config{Endpoint: memEndpoint(srv)})
	defer users.Close(context.Background())
	users.SetToken(t.Context(), "alice", srv.Token())
	var got url.Values
	sts := &scripted{answer: func(r *http.Request, n int) *http.Response {
		r.ParseForm()
		got = r.PostForm
		return jsonResp(r, 200, `{"access_token":"downstream-1","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":600}`)
	}}
	ex := &TokenExchange{
		FormEndpoint: FormEndpoint{TokenURL: "https://sts.test/token", ClientID: "gateway", ClientSecret: "s3cret", Auth: AuthBasic,
			Scope: "orders", HTTPClient: sts.client()},
		SubjectToken: func(ctx context.Context, key string) (string, string, error) {
			tok, err := users.Token(ctx, key)
			if err != nil {
				return "", "", err
			}
			return tok.AccessToken, TokenTypeAccessToken, nil
		},
		ActorToken: func(context.Context, string) (string, string, error) {
			return "actor-jwt", TokenTypeJWT, nil
		},
		RequestedTokenType: TokenTypeAccessToken,
		Audience:           []string{"orders-api"},
		Resource:           []string{"https://orders.test/"},
	}
	e, err := New(Config{Endpoint: ex})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	tok, err := e.Token(t.Context(), "alice")
	if err != nil || tok.AccessToken != "downstream-1" {
		t.Fatalf("Token = %v, %v", tok, err)
	}
	alice, _ := users.Token(t.Context(), "alice")
	want := url.Values{
		"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":        {alice.AccessToken},
		"subject_token_type":   {TokenTypeAccessToken},
		"actor_token":          {"actor-jwt"},
		"actor_token_type":     {TokenTypeJWT},
		"requested_token_type": {TokenTypeAccessToken},
		"audience":             {"orders-api"},
		"resource":             {"https://orders.test/"},
		"scope":                {"orders"},
	}
	if got.Encode() != want.Encode() {
		t.Errorf("request form\n%s\nwant\n%s", got.Encode(), want.Encode())
	}
}

// TestTokenExchangeSubjectNeedsLogin: when the subject key needs a login,
// so does the exchange, and the error says so (errors.Is), without a token
// request.
func TestTokenExchangeSubjectNeedsLogin(t *testing.T) {
	users, _ := New(Config{Endpoint: EndpointFunc(nil)})
	defer users.Close(context.Background())
	sts := fixed(500, nil, "")
	e, _ := New(Config{Endpoint: &TokenExchange{
		FormEndpoint: FormEndpoint{TokenURL: "https://sts.test/token", ClientID: "gateway", HTTPClient: sts.client()},
		SubjectToken: func(ctx context.Context, key string) (string, string, error) {
			tok, err := users.Token(ctx, key)
			if err != nil {
				return "", "", err
			}
			return tok.AccessToken, TokenTypeAccessToken, nil
		},
	}})
	defer e.Close(context.Background())
	if _, err := e.Token(t.Context(), "nobody"); !errors.Is(err, ErrReauthRequired) {
		t.Errorf("Token = %v, want ErrReauthRequired from the subject's key", err)
	}
	if n := sts.count(); n != 0 {
		t.Errorf("token requests = %d, want 0", n)
	}
}

// TestTokenExchangeCycle: two keys whose subject tokens are each other's
// tokens get an error wrapping ErrClientConfig instead of waiting for each
// other forever.
func TestTokenExchangeCycle(t *testing.T) {
	sts := fixed(200, http.Header{"Content-Type": {"application/json"}}, `{"access_token":"x","token_type":"Bearer"}`)
	var e *Engine
	other := map[string]string{"a": "b", "b": "a"}
	e, _ = New(Config{Endpoint: &TokenExchange{
		FormEndpoint: FormEndpoint{TokenURL: "https://sts.test/token", ClientID: "gateway", HTTPClient: sts.client()},
		SubjectToken: func(ctx context.Context, key string) (string, string, error) {
			tok, err := e.Token(ctx, other[key])
			if err != nil {
				return "", "", err
			}
			return tok.AccessToken, TokenTypeAccessToken, nil
		},
	}})
	defer e.Close(context.Background())
	done := make(chan error)
	go func() {
		_, err := e.Token(context.Background(), "a")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClientConfig) {
			t.Errorf("Token of a key in a cycle = %v, want ErrClientConfig", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("keys in a cycle deadlocked")
	}
	if n := sts.count(); n != 0 {
		t.Errorf("token requests = %d, want 0", n)
	}
}

// TestTokenExchangeAgainstServer: a gateway exchanges each user's current
// token for one of its own at refreshtest's token exchange, once per user
// however many requests need it; the API accepts the exchanged token; when
// the user's token is refreshed, the next exchange sends the new one.
func TestTokenExchangeAgainstServer(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	users, _ := New(Config{Endpoint: memEndpoint(srv)})
	defer users.Close(context.Background())
	users.SetToken(t.Context(), "alice", srv.Token())
	gw, _ := New(Config{Endpoint: &TokenExchange{
		FormEndpoint: *memEndpoint(srv),
		SubjectToken: func(ctx context.Context, key string) (string, string, error) {
			tok, err := users.Token(ctx, key)
			if err != nil {
				return "", "", err
			}
			return tok.AccessToken, TokenTypeAccessToken, nil
		},
		RequestedTokenType: TokenTypeAccessToken,
	}})
	defer gw.Close(context.Background())
	c := &http.Client{Transport: &Transport{Engine: gw, Base: &apiStub{srv: srv}, Key: "alice"}}
	for range 20 {
		if code, _, err := get(t, c, "http://api.test/"); code != 200 {
			t.Fatalf("request with the exchanged token: %d %v", code, err)
		}
	}
	if st := srv.Stats(); st.TokenExchanges != 1 {
		t.Errorf("token exchanges = %d for 20 requests, want 1", st.TokenExchanges)
	}
	newest, err := users.Refresh(t.Context(), "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	exchanged, _ := gw.Token(t.Context(), "alice")
	if !srv.Revoke(exchanged.AccessToken) { // the API now refuses it
		t.Fatal("the exchanged token is not the server's")
	}
	if code, _, err := get(t, c, "http://api.test/"); code != 200 {
		t.Fatalf("request after the revocation: %d %v", code, err)
	}
	if st := srv.Stats(); st.TokenExchanges != 2 || st.Served401 != 1 {
		t.Errorf("token exchanges = %d, 401s = %d; want 2 and 1: one new exchange", st.TokenExchanges, st.Served401)
	}
	grant, pair := pairOf(newest.RefreshToken)
	if ev := srv.tokenEvents(); len(ev) == 0 || ev[len(ev)-1].Grant != grant || ev[len(ev)-1].Pair != pair {
		t.Errorf("the second exchange did not send the user's newest token (grant %d, pair %d)", grant, pair)
	}
}
