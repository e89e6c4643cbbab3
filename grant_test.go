package refresh

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

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
