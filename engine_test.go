package refresh

// The engine's basic cycle: configuration, the token it serves and when it
// refreshes one proactively, the tokens a refresh yields, hooks.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
)

// TestSmoke pins the basic cycle against refreshtest's strict server: a
// request with the stored token, a rejected token refreshed once, the
// rotated token persisted, no reuse.
func TestSmoke(t *testing.T) {
	srv := newServer(t, refreshtest.Options{})
	store := new(MemoryStore)
	e, err := New(Config{OAuth2: srv.Config(), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	login := srv.Token()
	if err := e.SetToken(t.Context(), "", login); err != nil {
		t.Fatal(err)
	}
	c := e.Client(nil)
	if code, body, err := get(t, c, srv.URL+"/v1/me"); err != nil || code != 200 {
		t.Fatalf("got %d %q %v, want 200", code, body, err)
	}
	srv.RevokeAccessTokens()
	if code, body, err := get(t, c, srv.URL+"/v1/me"); err != nil || code != 200 {
		t.Fatalf("after revoke: got %d %q %v, want 200", code, body, err)
	}
	st := srv.Stats()
	if st.Refreshes != 1 || st.Reuses != 0 || st.Served401 != 1 {
		t.Errorf("refreshes %d, reuses %d, 401s %d; want 1, 0, 1", st.Refreshes, st.Reuses, st.Served401)
	}
	stored, _ := store.Load(t.Context(), DefaultKey)
	if stored.RefreshToken == login.RefreshToken {
		t.Errorf("stored refresh token was not rotated")
	}
}

// TestConfigValidation: auto-detected client authentication is refused,
// and so is a token-endpoint client that goes through this package.
func TestConfigValidation(t *testing.T) {
	conf := &oauth2.Config{Endpoint: oauth2.Endpoint{TokenURL: "https://as.test/token"}}
	if _, err := New(Config{OAuth2: conf}); err == nil || !strings.Contains(err.Error(), "AuthStyle") {
		t.Errorf("AuthStyleAutoDetect: err = %v, want a refusal", err)
	}
	if _, err := New(Config{}); err == nil {
		t.Errorf("no OAuth2 and no Endpoint: err = nil")
	}
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	if _, err := New(Config{OAuth2: conf, HTTPClient: &http.Client{Transport: &Transport{}}}); err == nil {
		t.Errorf("HTTPClient over refresh.Transport: err = nil")
	}
	if _, err := New(Config{OAuth2: conf}); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestNoStoredToken: a key with no token fails with ErrReauthRequired
// without calling the endpoint.
func TestNoStoredToken(t *testing.T) {
	var calls atomic.Int64
	e, _ := New(Config{Endpoint: EndpointFunc(func(ctx context.Context, tok *oauth2.Token) (*oauth2.Token, error) {
		calls.Add(1)
		return nil, errors.New("unreachable")
	})})
	_, err := e.Token(t.Context(), "nobody")
	if !errors.Is(err, ErrReauthRequired) {
		t.Errorf("err = %v, want ErrReauthRequired", err)
	}
	if calls.Load() != 0 {
		t.Errorf("endpoint calls = %d, want 0", calls.Load())
	}
}

// TestTokenSource: the oauth2.TokenSource adapter serves the engine's
// token and refreshes with no captured context.
func TestTokenSource(t *testing.T) {
	as := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	e := newEngine(t, as, Config{})
	ts := e.TokenSource("")
	tok, err := ts.Token()
	if err != nil || tok.AccessToken != as.token().AccessToken {
		t.Fatalf("Token() = %v, %v", tok, err)
	}
	// Expire the token in memory; the source must refresh it.
	e.SetToken(t.Context(), "", &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Second)})
	tok2, err := ts.Token()
	if err != nil || tok2.AccessToken == tok.AccessToken || tok2.AccessToken != as.token().AccessToken {
		t.Fatalf("after expiry Token() = %v, %v; want a refreshed token", tok2, err)
	}
	if n := as.Stats().TokenRequests; n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

// TestNoRotationKeepsRefreshToken: a response without refresh_token
// (Google, WSO2 with renewal off) keeps the old refresh token.
func TestNoRotationKeepsRefreshToken(t *testing.T) {
	as := newServer(t, refreshtest.Options{Rotation: refreshtest.RotateNever})
	store := new(MemoryStore)
	e := newEngine(t, as, Config{Store: store})
	first := as.token().RefreshToken
	for range 2 {
		if _, err := e.Refresh(t.Context(), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	stored, _ := store.Load(t.Context(), DefaultKey)
	if stored.RefreshToken != first {
		t.Errorf("stored refresh token %q, want the original %q", stored.RefreshToken, first)
	}
	if n := as.Stats().TokenRequests; n != 2 {
		t.Errorf("refreshes = %d, want 2", n)
	}
}

// TestResponseVariants: token_type and expires_in as real servers send
// them.
func TestResponseVariants(t *testing.T) {
	for _, tc := range []struct {
		name       string
		extra      string
		wantAuth   string
		wantExpiry bool
	}{
		{"bearer lower", `"token_type":"bearer","expires_in":3600`, "Bearer AT", true},
		{"BEARER upper", `"token_type":"BEARER","expires_in":3600`, "Bearer AT", true},
		{"type missing", `"expires_in":3600`, "Bearer AT", true},
		{"expires_in string", `"token_type":"Bearer","expires_in":"3600"`, "Bearer AT", true},
		{"expires_in null", `"token_type":"Bearer","expires_in":null`, "Bearer AT", false},
		{"expires_in missing", `"token_type":"Bearer"`, "Bearer AT", false},
		{"expires_in zero", `"token_type":"Bearer","expires_in":0`, "Bearer AT", false},
		{"expires_in negative", `"token_type":"Bearer","expires_in":-30`, "Bearer AT", false},
		{"expires_in huge", `"token_type":"Bearer","expires_in":99999999999`, "Bearer AT", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fixed(200, http.Header{"Content-Type": {"application/json"}}, `{"access_token":"AT","refresh_token":"RT2",`+tc.extra+`}`)
			e, _ := New(Config{OAuth2: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{TokenURL: srv.url(t), AuthStyle: oauth2.AuthStyleInParams}}})
			e.SetToken(t.Context(), "", &oauth2.Token{RefreshToken: "RT"})
			var sent []string
			c := &http.Client{Transport: &Transport{Engine: e, Base: stubRT(func(r *http.Request) (*http.Response, error) {
				sent = append(sent, r.Header.Get("Authorization"))
				return response(r, 200, nil, ""), nil
			})}}
			for range 3 {
				if _, _, err := get(t, c, "http://api.test/"); err != nil {
					t.Fatal(err)
				}
			}
			if srv.count() != 1 {
				t.Errorf("refreshes = %d, want 1 (a bad expiry must not cause a refresh per request)", srv.count())
			}
			for _, got := range sent {
				if got != tc.wantAuth {
					t.Errorf("Authorization %q, want %q", got, tc.wantAuth)
				}
			}
			tok, _ := e.Token(t.Context(), "")
			if got := !tok.Expiry.IsZero(); got != tc.wantExpiry {
				t.Errorf("has expiry = %v, want %v (expiry %v)", got, tc.wantExpiry, tok.Expiry)
			}
		})
	}
}

// TestRefreshedHook: Refreshed fires once per refresh with the key.
func TestRefreshedHook(t *testing.T) {
	as := newServer(t, refreshtest.Options{})
	var keys []string
	var mu sync.Mutex
	e := newEngine(t, as, Config{Hooks: Hooks{Refreshed: func(k string) { mu.Lock(); keys = append(keys, k); mu.Unlock() }}})
	e.Refresh(t.Context(), "", nil)
	FlushEvents(e) // hooks run on the event goroutine
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 1 || keys[0] != DefaultKey {
		t.Errorf("Refreshed calls %q, want [%q]", keys, DefaultKey)
	}
}

// TestSkewClamp pins when a token counts as due for refresh.
func TestSkewClamp(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name    string
		skew    time.Duration
		tok     oauth2.Token
		wantAt  time.Duration // refreshAt - expiry; 0 with zero expiry: never
		noClock bool
	}{
		{name: "default skew, 1h token", tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: -60 * time.Second},
		{name: "3s token: half its life", tok: oauth2.Token{Expiry: now.Add(3 * time.Second), ExpiresIn: 3}, wantAt: -1500 * time.Millisecond},
		{name: "custom skew", skew: 10 * time.Second, tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: -10 * time.Second},
		{name: "negative skew: at expiry", skew: -1, tok: oauth2.Token{Expiry: now.Add(time.Hour), ExpiresIn: 3600}, wantAt: 0},
		{name: "zero expiry: never", tok: oauth2.Token{}, noClock: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := New(Config{Endpoint: EndpointFunc(nil), ExpirySkew: tc.skew})
			tc.tok.AccessToken = "a"
			refreshAt := refreshAtOf(e, "k", &tc.tok)
			if tc.noClock {
				if !refreshAt.IsZero() {
					t.Errorf("refreshAt = %v, want zero", refreshAt)
				}
				return
			}
			if got := refreshAt.Sub(tc.tok.Expiry); got != tc.wantAt {
				t.Errorf("refreshAt - expiry = %v, want %v", got, tc.wantAt)
			}
		})
	}
}

// TestShortTokenSteadyTraffic: a 3 s token under steady traffic is
// refreshed at half its lifetime (the 60 s skew clamped; the jitter never
// goes before half the lifetime), not on every request, and never lets a
// request hit an expired token. The server keeps one access token per
// grant, so a request sent with the old token while the early refresh runs
// beside it may be rejected and is sent again with the new one.
func TestShortTokenSteadyTraffic(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: 3 * time.Second, OneAccessTokenPerGrant: true}) // listens: outside the bubble
	synctest.Test(t, func(t *testing.T) {
		e, err := New(Config{Endpoint: memEndpoint(srv)})
		if err != nil {
			t.Fatal(err)
		}
		e.SetToken(t.Context(), "", srv.Token()) // expires in 3 s on the bubble's clock
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
		start := time.Now()
		requests := 0
		for time.Since(start) < 30*time.Second {
			if code, _, err := get(t, c, "http://api.test/"); code != 200 {
				t.Fatalf("at %v: %d %v", time.Since(start), code, err)
			}
			requests++
			time.Sleep(100 * time.Millisecond)
			// A refresh falls due on a tick: let its timer's goroutine
			// set the due flag before the request of that tick reads it,
			// rather than leave the order to the scheduler.
			synctest.Wait()
		}
		// Refreshes at 1.5 s, 3 s, ... 28.5 s.
		st := srv.Stats()
		if st.TokenRequests != 19 {
			t.Errorf("refreshes = %d over 30 s with a 3 s token, want 19", st.TokenRequests)
		}
		if st.Served401 > st.TokenRequests {
			t.Errorf("401s = %d for %d refreshes, want at most one per refresh", st.Served401, st.TokenRequests)
		}
		if requests != 300 {
			t.Errorf("requests = %d, want 300", requests)
		}
	})
}

// TestEarlyRefreshFailure: when a refresh due within the skew fails, the
// still-valid token keeps serving requests, the endpoint is tried again
// every few seconds rather than on every request, and requests fail only
// once the token has really expired.
func TestEarlyRefreshFailure(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour, OneAccessTokenPerGrant: true})
	synctest.Test(t, func(t *testing.T) {
		// One attempt per refresh, so that the count below is about
		// refreshes; TestTemporaryRetries covers the attempts.
		e, _ := New(Config{Endpoint: memEndpoint(srv), RefreshAttempts: 1})
		e.SetToken(t.Context(), "", srv.Token())
		expiry := time.Now().Add(time.Hour)
		srv.SetFaults(refreshtest.Faults{Rate: 1, Kind: refreshtest.FaultUnavailable}) // every refresh: 503
		c := &http.Client{Transport: &Transport{Engine: e, Base: &apiStub{srv: srv}}}
		time.Sleep(58 * time.Minute)
		var okBefore, failedAfter, requests int
		for time.Now().Before(expiry.Add(10 * time.Second)) {
			code, _, err := get(t, c, "http://api.test/")
			requests++
			switch {
			case time.Now().Before(expiry) && code == 200:
				okBefore++
			case !time.Now().Before(expiry) && err != nil:
				failedAfter++
			default:
				t.Errorf("at %v before expiry: status %d, err %v", time.Until(expiry), code, err)
			}
			time.Sleep(time.Second)
		}
		if okBefore != 120 || failedAfter != 10 {
			t.Errorf("ok before expiry = %d, failed after = %d; want 120 and 10", okBefore, failedAfter)
		}
		// About one attempt per 5 s from the refresh time on (60 to 90 s
		// before the expiry, with the jitter), a few more as the expiry
		// nears, then one per request once expired: far fewer than one
		// per request.
		if calls := srv.Stats().TokenRequests; calls < 12 || calls > 32 {
			t.Errorf("endpoint calls = %d for %d requests, want 12..32", calls, requests)
		}
	})
}
