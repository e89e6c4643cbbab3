package refresh

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ccEndpoint is a ClientCredentials whose token endpoint is s, in memory.
func ccEndpoint(s *scripted) *ClientCredentials {
	return &ClientCredentials{FormEndpoint: FormEndpoint{TokenURL: "https://auth.test/token", ClientID: "svc", ClientSecret: "s3cret",
		Auth: AuthInBody, HTTPClient: s.client()}}
}

// TestFetchRefusedIsClientConfig: a client credentials request the server
// refuses, whatever the code, wraps ErrClientConfig, never
// ErrReauthRequired (no login can mend it); the key does not ask again at
// once, and asks again a few seconds later, on demand.
func TestFetchRefusedIsClientConfig(t *testing.T) {
	for _, body := range []string{
		`{"error":"invalid_client"}`, `{"error":"invalid_grant"}`, `{"error":"invalid_request"}`, `{"error":"unauthorized_client"}`,
	} {
		t.Run(body, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := fixed(400, http.Header{"Content-Type": {"application/json"}}, body)
				e, _ := New(Config{Endpoint: ccEndpoint(srv)})
				defer e.Close(context.Background())
				for range 3 {
					_, err := e.Token(t.Context(), "svc")
					if !errors.Is(err, ErrClientConfig) || errors.Is(err, ErrReauthRequired) {
						t.Fatalf("Token = %v, want ErrClientConfig and not ErrReauthRequired", err)
					}
				}
				if n := srv.count(); n != 1 {
					t.Errorf("token requests = %d, want 1 until the recheck", n)
				}
				if st := e.Stats(); st.ReauthRequired != 0 {
					t.Errorf("Stats.ReauthRequired = %d, want 0", st.ReauthRequired)
				}
				time.Sleep(reauthRecheck)
				e.Token(t.Context(), "svc")
				if n := srv.count(); n != 2 {
					t.Errorf("token requests after the recheck = %d, want 2", n)
				}
			})
		})
	}
}

// TestFetchTemporaryRetried: a client credentials request that fails
// temporarily is tried RefreshAttempts times, then reported temporary.
func TestFetchTemporaryRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fixed(503, nil, "")
		e, _ := New(Config{Endpoint: ccEndpoint(srv)})
		defer e.Close(context.Background())
		_, err := e.Token(t.Context(), "svc")
		var x *Error
		if !errors.As(err, &x) || !x.Temporary() {
			t.Fatalf("Token = %v, want a temporary *Error", err)
		}
		if n := srv.count(); n != defaultAttempts {
			t.Errorf("token requests = %d, want %d", n, defaultAttempts)
		}
	})
}

// TestClientCredentialsFrom: an x/oauth2 clientcredentials.Config is taken
// as it is: URL, credentials, scopes, parameters; auto-detection tries the
// header, then the body, and spends nothing doing so.
func TestClientCredentialsFrom(t *testing.T) {
	var forms []string
	srv := &scripted{answer: func(r *http.Request, n int) *http.Response {
		r.ParseForm()
		_, _, basic := r.BasicAuth()
		forms = append(forms, r.PostForm.Encode())
		if basic {
			return jsonResp(r, 401, `{"error":"invalid_client"}`)
		}
		return jsonResp(r, 200, `{"access_token":"at-1","token_type":"Bearer","expires_in":3600}`)
	}}
	conf := &clientcredentials.Config{ClientID: "svc", ClientSecret: "s3cret", TokenURL: "https://auth.test/token",
		Scopes: []string{"read", "write"}, EndpointParams: map[string][]string{"audience": {"https://api.test"}}}
	e, err := New(Config{Endpoint: ClientCredentialsFrom(conf, srv.client())})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	tok, err := e.Token(t.Context(), "svc")
	if err != nil || tok.AccessToken != "at-1" {
		t.Fatalf("Token = %v, %v", tok, err)
	}
	want := []string{
		"audience=https%3A%2F%2Fapi.test&grant_type=client_credentials&scope=read+write",
		"audience=https%3A%2F%2Fapi.test&client_id=svc&client_secret=s3cret&grant_type=client_credentials&scope=read+write",
	}
	if len(forms) != 2 || forms[0] != want[0] || forms[1] != want[1] {
		t.Errorf("requests:\n%q\nwant\n%q", forms, want)
	}
	for style, auth := range map[oauth2.AuthStyle]ClientAuth{oauth2.AuthStyleInParams: AuthInBody, oauth2.AuthStyleInHeader: AuthBasic} {
		conf.AuthStyle = style
		if cc := ClientCredentialsFrom(conf, nil); cc.Auth != auth || cc.auto {
			t.Errorf("AuthStyle %v: Auth %v (auto %v), want %v", style, cc.Auth, cc.auto, auth)
		}
	}
}

// memCC is srv's client credentials grant, in memory.
func memCC(srv *testServer) *ClientCredentials {
	return &ClientCredentials{FormEndpoint: *memEndpoint(srv)}
}

// TestClientCredentialsOncePerKey: 1,000 goroutines of two engines sharing
// a store (two processes) need a token at once: one client credentials
// request between them; the token is in the store before anyone uses it;
// a 401 from the API costs one new request, however many saw it; a token
// that expires costs one more.
func TestClientCredentialsOncePerKey(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(lockingStore)
	var used atomic.Bool
	a, _ := New(Config{Endpoint: memCC(srv), Store: store})
	b, _ := New(Config{Endpoint: memCC(srv), Store: store})
	defer a.Close(context.Background())
	defer b.Close(context.Background())
	api := &apiStub{srv: srv, before: func(r *http.Request) {
		if !used.Swap(true) {
			if _, err := store.MemoryStore.Load(context.Background(), "svc"); err != nil {
				t.Errorf("the token was used before it was saved: %v", err)
			}
		}
	}}
	storm := func() {
		var wg sync.WaitGroup
		for i := range 1000 {
			e := []*Engine{a, b}[i%2]
			c := &http.Client{Transport: &Transport{Engine: e, Base: api, Key: "svc"}}
			wg.Go(func() {
				if code, _, err := get(t, c, "http://api.test/"); code != 200 {
					t.Errorf("request: %d %v", code, err)
				}
			})
		}
		wg.Wait()
	}
	storm()
	if st := srv.Stats(); st.ClientCredentialsGrants != 1 || st.TokenRequests != 1 {
		t.Fatalf("after the first storm: %d grants, %d token requests; want 1 and 1", st.ClientCredentialsGrants, st.TokenRequests)
	}
	srv.RevokeAccessTokens()
	storm()
	if st := srv.Stats(); st.ClientCredentialsGrants != 2 || st.TokenRequests != 2 {
		t.Errorf("after a storm of 401s: %d grants, %d token requests; want 2 and 2", st.ClientCredentialsGrants, st.TokenRequests)
	}
	if st := srv.Stats(); st.Reuses != 0 || st.Refreshes != 0 {
		t.Errorf("refreshes = %d, reuses = %d; want none: the grant has no refresh token", st.Refreshes, st.Reuses)
	}
}

// TestClientCredentialsExpiry: with steady traffic, a client credentials
// token is fetched anew once per lifetime (at half of it for this short
// one), in the background: no request fails or waits.
func TestClientCredentialsExpiry(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 4 * time.Second})
	synctest.Test(t, func(t *testing.T) {
		e, _ := New(Config{Endpoint: memCC(srv)})
		defer e.Close(context.Background())
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}, Key: "svc"}}
		get(t, c, "http://api.test/") // the first fetch, which waits
		start := time.Now()
		for time.Since(start) < 20*time.Second {
			t0 := time.Now()
			if code, _, err := get(t, c, "http://api.test/"); code != 200 || time.Since(t0) != 0 {
				t.Fatalf("request at %v: %d %v, waited %v", time.Since(start), code, err, time.Since(t0))
			}
			time.Sleep(100 * time.Millisecond)
			synctest.Wait()
		}
		// Fetched at 0, 2, 4, ... 18 s: one per half lifetime.
		if n := srv.Stats().ClientCredentialsGrants; n != 10 {
			t.Errorf("grants = %d over 20 s of 4 s tokens, want 10", n)
		}
	})
}

// TestClientCredentialsRefreshTokenRefused: a client credentials grant
// whose server also issues refresh tokens refreshes with them, and when one
// is refused fetches a new token instead of asking for a login.
func TestClientCredentialsRefreshTokenRefused(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour, ClientCredentials: refreshtest.GrantOptions{RefreshTokens: true}})
	e, _ := New(Config{Endpoint: memCC(srv)})
	defer e.Close(context.Background())
	first, err := e.Token(t.Context(), "svc")
	if err != nil || first.RefreshToken == "" {
		t.Fatalf("first token: %v, refresh token %t", err, first != nil && first.RefreshToken != "")
	}
	if _, err := e.Refresh(t.Context(), "svc", first); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.ClientCredentialsGrants != 1 {
		t.Fatalf("refreshes = %d, grants = %d; want the refresh token used", st.Refreshes, st.ClientCredentialsGrants)
	}
	srv.RevokeGrants()
	srv.expectRefusals("invalid_grant")
	tok, err := e.Refresh(t.Context(), "svc", nil)
	if err != nil || tok == nil {
		t.Fatalf("Refresh after the grant was revoked: %v, want a new token from the grant", err)
	}
	if st := srv.Stats(); st.ClientCredentialsGrants != 2 {
		t.Errorf("grants = %d, want 2: the refused refresh token fell back to the grant", st.ClientCredentialsGrants)
	}
}
