package refreshtest_test

// The refresh library against the server: what refreshtest is for.

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// newClient returns a client of the refresh library over endpoint (nil:
// srv.Config()), logged in with a new grant of srv.
func newClient(t *testing.T, srv *refreshtest.Server, endpoint refresh.Endpoint) *http.Client {
	t.Helper()
	c := refresh.Config{Endpoint: endpoint}
	if endpoint == nil {
		c.OAuth2 = srv.Config()
	}
	eng, err := refresh.New(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.SetToken(t.Context(), refresh.DefaultKey, srv.Token()); err != nil {
		t.Fatal(err)
	}
	return eng.Client(nil)
}

func get(c *http.Client, url string) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestLibraryStorm: 50 goroutines meet a revoked access token; one refresh
// serves them all, and no refresh token is reused.
func TestLibraryStorm(t *testing.T) {
	srv := newServer(t, refreshtest.Options{OneAccessTokenPerGrant: true})
	c := newClient(t, srv, nil)
	if s, err := get(c, srv.URL+"/warm-up"); s != 200 || err != nil {
		t.Fatalf("got %d, %v, want 200", s, err)
	}
	srv.RevokeAccessTokens()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if s, err := get(c, srv.URL+"/x"); s != 200 || err != nil {
				t.Errorf("got %d, %v, want 200", s, err)
			}
		})
	}
	wg.Wait()
	if st := srv.Stats(); st.TokenRequests != 1 || st.Refreshes != 1 || st.Reuses != 0 || st.Served200 != 51 {
		t.Errorf("got %+v, want one refresh, no reuse, 51 successful calls", st)
	}
}

// TestLibraryGW2: every OAuth error is a 500; a revoked grant must still be
// recognized as "log in again", after one token request.
func TestLibraryGW2(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Errors: refreshtest.Errors500, OneAccessTokenPerGrant: true})
	c := newClient(t, srv, nil)
	srv.RevokeGrants()
	for range 3 {
		if _, err := get(c, srv.URL+"/x"); !errors.Is(err, refresh.ErrReauthRequired) {
			t.Errorf("got %v, want ErrReauthRequired", err)
		}
	}
	if st := srv.Stats(); st.TokenRequests != 1 || st.InvalidGrant != 1 {
		t.Errorf("got %+v, want exactly one token request, refused with invalid_grant", st)
	}
}

// TestLibraryBasicRaw: x/oauth2 cannot send raw Basic credentials; the
// library's FormEndpoint can, and sending urlencoded ones is refused.
func TestLibraryBasicRaw(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Auth: refreshtest.AuthBasicRaw})
	conf := srv.Config()
	for _, tc := range []struct {
		auth refresh.ClientAuth
		ok   bool
	}{{refresh.AuthBasicRaw, true}, {refresh.AuthBasic, false}} {
		c := newClient(t, srv, &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: conf.ClientID, ClientSecret: conf.ClientSecret, Auth: tc.auth})
		srv.RevokeAccessTokens()
		s, err := get(c, srv.URL+"/x")
		if tc.ok && (s != 200 || err != nil) {
			t.Errorf("auth %d: got %d, %v, want 200", tc.auth, s, err)
		}
		if !tc.ok && !errors.Is(err, refresh.ErrClientConfig) {
			t.Errorf("auth %d: got %d, %v, want ErrClientConfig", tc.auth, s, err)
		}
	}
	if st := srv.Stats(); st.Refreshes != 1 || st.InvalidClient != 1 {
		t.Errorf("got %+v, want one refresh and one invalid_client", st)
	}
}

// TestLibraryWSO2: Basic, scope=PRODUCTION, refresh tokens not renewed.
func TestLibraryWSO2(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Auth: refreshtest.AuthBasic, Scope: "PRODUCTION", Rotation: refreshtest.RotateNever})
	conf := srv.Config()
	c := newClient(t, srv, &refresh.FormEndpoint{TokenURL: srv.TokenURL, ClientID: conf.ClientID, ClientSecret: conf.ClientSecret,
		Auth: refresh.AuthBasic, Scope: "PRODUCTION"})
	for range 3 {
		srv.RevokeAccessTokens()
		if s, err := get(c, srv.URL+"/x"); s != 200 || err != nil {
			t.Errorf("got %d, %v, want 200", s, err)
		}
	}
	if st := srv.Stats(); st.Refreshes != 3 || st.Rotations != 0 || st.TokenRequests != 3 {
		t.Errorf("got %+v, want 3 refreshes without rotation", st)
	}
}

// TestLibraryPartnerJSON: the JSON dialect of seed 003.
func TestLibraryPartnerJSON(t *testing.T) {
	header := http.Header{"partnerId": {"4711"}, "grantType": {"refresh_token"}}
	srv := newServer(t, refreshtest.Options{TokenPath: "/v1/auth/token", JSON: &refreshtest.JSONDialect{Field: "refreshToken", Header: header}})
	c := newClient(t, srv, &refresh.JSONEndpoint{URL: srv.TokenURL, Field: "refreshToken", Header: header})
	for range 2 {
		srv.RevokeAccessTokens()
		if s, err := get(c, srv.URL+"/x"); s != 200 || err != nil {
			t.Errorf("got %d, %v, want 200", s, err)
		}
	}
	if st := srv.Stats(); st.Refreshes != 2 || st.Reuses != 0 || st.InvalidRequest != 0 {
		t.Errorf("got %+v, want 2 refreshes", st)
	}
}

// TestLibraryUnavailable: 503s are retried with the same refresh token,
// which the server never spent.
func TestLibraryUnavailable(t *testing.T) {
	t.Parallel() // the library backs off for about half a second
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 0.5}})
	c := newClient(t, srv, nil)
	srv.RevokeAccessTokens()
	s, err := get(c, srv.URL+"/x")
	if st := srv.Stats(); s != 200 || err != nil || st.Faults != 1 || st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("got %d, %v, %+v, want 200 after one 503 and one refresh", s, err, st)
	}
}
