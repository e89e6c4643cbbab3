package refresh

// What a failed refresh leaves behind: a latch for a refused refresh token,
// a cooldown for a temporary failure, and errors that name the failure
// without a token or secret.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// TestReauthLatch: a rejected refresh token gives ErrReauthRequired, and
// then no token-endpoint call at all, however many requests follow, until
// a new token is set.
func TestReauthLatch(t *testing.T) {
	for _, tc := range []struct {
		status int
		style  refreshtest.ErrorStyle
	}{
		{400, refreshtest.ErrorsRFC},
		{500, refreshtest.Errors500}, // gw2.me answers invalid_grant with 500
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := newServer(t, refreshtest.Options{Errors: tc.style, Auth: refreshtest.AuthBasic})
			reauth := make(chan string, 10)
			e, err := New(Config{
				OAuth2: srv.Config(), // Basic credentials: oauth2.AuthStyleInHeader
				Hooks:  Hooks{ReauthRequired: func(key string, err error) { reauth <- key }},
			})
			if err != nil {
				t.Fatal(err)
			}
			e.SetToken(t.Context(), "", srv.Token())
			srv.RevokeAccessTokens()                            // the API rejects the token: a refresh is due
			srv.RefuseRefreshTokens("invalid_grant", "expired") // and the refresh token is refused
			c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
			_, err = c.Get("http://api.test/")
			if !errors.Is(err, ErrReauthRequired) {
				t.Fatalf("first request: err = %v, want ErrReauthRequired", err)
			}
			var x *Error
			if !errors.As(err, &x) || x.Code != "invalid_grant" || x.StatusCode != tc.status || x.Temporary() {
				t.Errorf("error details = %+v, want invalid_grant, status %d, not temporary", x, tc.status)
			}
			if n := srv.Stats().TokenRequests; n != 1 {
				t.Fatalf("token-endpoint calls = %d, want 1", n)
			}
			for range 100 {
				if _, err := c.Get("http://api.test/"); !errors.Is(err, ErrReauthRequired) {
					t.Fatalf("latched request: err = %v, want ErrReauthRequired", err)
				}
			}
			if got := srv.Stats().TokenRequests; got != 1 {
				t.Errorf("token-endpoint calls after 100 latched requests = %d, want 1", got)
			}
			FlushEvents(e) // hooks run on the event goroutine: all calls are in reauth now
			if got := <-reauth; got != DefaultKey {
				t.Errorf("ReauthRequired hook key %q, want %q", got, DefaultKey)
			}
			if len(reauth) != 0 {
				t.Errorf("ReauthRequired hook called %d more times, want once", len(reauth))
			}

			// A new login lifts the latch.
			if err := e.SetToken(t.Context(), "", srv.Token()); err != nil {
				t.Fatal(err)
			}
			if code, _, err := get(t, c, "http://api.test/"); code != 200 {
				t.Errorf("after SetToken: %d %v", code, err)
			}
		})
	}
}

// TestReauthRecheck: a latched key notices a new login that another
// process put in the shared store, at most every few seconds, still
// without calling the endpoint.
func TestReauthRecheck(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	synctest.Test(t, func(t *testing.T) {
		store := new(MemoryStore)
		e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store})
		tok := srv.Token()
		e.SetToken(t.Context(), "", tok)
		srv.RevokeGrants() // every refresh is refused
		if _, err := e.Refresh(t.Context(), "", tok); !errors.Is(err, ErrReauthRequired) {
			t.Fatalf("err = %v, want ErrReauthRequired", err)
		}
		store.Save(t.Context(), DefaultKey, &oauth2.Token{AccessToken: "fresh", RefreshToken: "rt"})
		if _, err := e.Token(t.Context(), ""); !errors.Is(err, ErrReauthRequired) {
			t.Fatalf("right after latching: err = %v, want ErrReauthRequired", err)
		}
		time.Sleep(reauthRecheck)
		tok, err := e.Token(t.Context(), "")
		if err != nil || tok.AccessToken != "fresh" {
			t.Fatalf("after recheck: %v, %v; want the stored token", tok, err)
		}
		if n := srv.Stats().TokenRequests; n != 1 {
			t.Errorf("token-endpoint calls = %d, want 1", n)
		}
	})
}

// TestTemporaryFailure: a 503 without an OAuth code is temporary and not
// latched: after the cooldown the next request tries again.
func TestTemporaryFailure(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Faults: refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultUnavailable}})
	e, _ := New(Config{RefreshAttempts: 1, OAuth2: srv.Config()})
	tok := srv.Token()
	tok.Expiry = time.Now().Add(-time.Minute)
	e.SetToken(t.Context(), "", tok)
	for i := 1; i <= 2; i++ {
		_, err := e.Token(t.Context(), "")
		var x *Error
		if !errors.As(err, &x) || !x.Temporary() || x.StatusCode != 503 || errors.Is(err, ErrReauthRequired) {
			t.Fatalf("attempt %d: err = %v, want temporary 503", i, err)
		}
		if got := srv.Stats().TokenRequests; got != i {
			t.Errorf("endpoint calls = %d, want %d", got, i)
		}
		if want := "Service Unavailable"; x.BodySnippet != want { // refreshtest's text/plain 503 page
			t.Errorf("BodySnippet = %q, want %q", x.BodySnippet, want)
		}
		time.Sleep(cooldown(x)) // let the cooldown pass
	}
}

// TestNoSecretsInOutput drives every failure path with secrets that are
// easy to find, and scans every error string and log line for them.
func TestNoSecretsInOutput(t *testing.T) {
	const (
		access  = "AT-SECRET-4f1a"
		refresh = "RT-SECRET-9c2b"
		secret  = "CLIENT-SECRET-77ee"
	)
	secrets := []string{access, refresh, secret, "NEW-AT-SECRET", "NEW-RT-SECRET"}
	logs := new(syncBuffer)
	var errs []string
	var mu sync.Mutex
	record := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err.Error())
			mu.Unlock()
		}
	}
	hooks := Hooks{RefreshFailed: func(k string, err error) { record(err) }, SaveFailed: func(k string, err error) { record(err) }}

	bodies := []struct {
		status int
		body   string
	}{
		{400, `{"error":"invalid_grant","error_description":"token ` + refresh + ` revoked"}`},
		{500, `<html>` + refresh + ` ` + secret + `</html>`},
		{400, `{"error":"invalid_client","error_description":"bad secret ` + secret + `"}`},
		{200, `{"access_token":"NEW-AT-SECRET` + "\r\n" + `","refresh_token":"NEW-RT-SECRET"}`},
		{200, `{"access_token":"NEW-AT-SECRET","refresh_token":"NEW-RT-SECRET","expires_in":"x"}`},
		{302, `<a href="https://evil.test/?` + refresh + `">`},
	}
	for _, b := range bodies {
		tokenURL := fixed(b.status, http.Header{"Content-Type": {"application/json"}}, b.body).url(t)
		store := new(fakeStore)
		store.failSaves(errors.New("store down"))
		e, _ := New(Config{
			RefreshAttempts: 1,
			OAuth2:          &oauth2.Config{ClientID: "id", ClientSecret: secret, Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}},
			Store:           store, Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Hooks: hooks,
		})
		store.MemoryStore.Save(t.Context(), DefaultKey, &oauth2.Token{AccessToken: access, RefreshToken: refresh})
		c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(func(r *http.Request) (*http.Response, error) {
			return response(r, 401, nil, ""), nil
		})}}
		_, err := c.Get("http://api.test/")
		record(err)
		_, err = e.Token(t.Context(), "")
		record(err)
		FlushEvents(e) // hooks run on the event goroutine
	}
	// A store that fails to load, and an endpoint that panics.
	store := new(fakeStore)
	lerr := errors.New("connection refused")
	store.loadErr.Store(&lerr)
	e, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { panic(refresh) }), Store: store, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err := e.Token(t.Context(), "")
	record(err)
	e2, _ := New(Config{Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { panic(refresh) }), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	e2.SetToken(t.Context(), "", &oauth2.Token{RefreshToken: refresh})
	_, err = e2.Token(t.Context(), "")
	record(err)

	if len(errs) < 10 {
		t.Fatalf("only %d errors collected; the scan would prove little", len(errs))
	}
	all := strings.Join(errs, "\n") + "\n" + logs.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("secret %q appears in output:\n%s", s, all)
		}
	}
	for _, msg := range errs {
		if !strings.HasPrefix(msg, "refresh:") && !strings.Contains(msg, "refresh:") {
			t.Errorf("error %q does not come from this package", msg)
		}
	}
	if !strings.Contains(all, Fingerprint(refresh)) {
		t.Errorf("the echoed refresh token should appear as its fingerprint %q", Fingerprint(refresh))
	}
}

func TestErrorString(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Key: "u1", StatusCode: 400, Code: "invalid_grant", Description: "expired", Err: ErrReauthRequired},
			`refresh: key "u1": token endpoint answered HTTP 400 invalid_grant: expired (re-authentication required)`},
		{&Error{Key: "u1", Err: errors.New("store load: boom")}, `refresh: key "u1": store load: boom`},
		{&Error{Key: "u1"}, `refresh: key "u1": refresh failed`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	if got := sanitizeDescription("a\r\nb "+strings.Repeat("é", 200), "zz"); strings.ContainsAny(got, "\r\n") || len(got) > maxDescription+len("…") {
		t.Errorf("sanitizeDescription kept control characters or length: %q", got)
	}
}
