package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

const (
	clientID     = "demo-client"
	clientSecret = "demo-client-secret"
)

// authServer is a strict authorization server and the API it protects, both
// on 127.0.0.1. It is strict where real servers are, so that a sloppy client
// fails loudly here rather than in production:
//
//   - refresh tokens are single-use and rotate on every refresh;
//   - presenting a refresh token that was already used is a reuse: the whole
//     token family is revoked (RFC 9700 §4.14.2), which logs the user out;
//   - the API accepts only the latest access token, and only until it
//     expires, so every refresh instantly invalidates requests in flight.
//
// Its counters are the ground truth for the demo's invariants: they count
// what reached the server, not what the client believes it did.
type authServer struct {
	lifetime time.Duration

	mu        sync.Mutex
	access    string          // the only access token the API accepts; "" = none
	accessExp time.Time       // when access stops being accepted
	refresh   string          // the only refresh token the token endpoint accepts
	spent     map[string]bool // refresh tokens already exchanged
	revoked   bool            // the family was revoked after a reuse

	refreshCalls atomic.Int64 // token-endpoint requests, good or bad
	rotations    atomic.Int64 // refresh tokens exchanged for a new pair
	reuses       atomic.Int64 // spent refresh tokens presented
	served401    atomic.Int64 // API requests rejected
	revocations  atomic.Int64 // access tokens revoked by revokeAccess

	tokenSrv, apiSrv *httptest.Server
}

func newAuthServer(lifetime time.Duration) *authServer {
	s := &authServer{lifetime: lifetime, spent: map[string]bool{}}
	// Two servers, as in real deployments: the client must not assume the
	// token endpoint and the API share a host.
	s.tokenSrv = httptest.NewServer(http.HandlerFunc(s.serveToken))
	s.apiSrv = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	return s
}

func (s *authServer) close() {
	s.apiSrv.Close()
	s.tokenSrv.Close()
}

func (s *authServer) tokenURL() string { return s.tokenSrv.URL + "/token" }
func (s *authServer) apiURL() string   { return s.apiSrv.URL + "/v1/me" }

// login stands in for the interactive authorization-code flow a real
// program would run once: it issues the first token pair.
func (s *authServer) login() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.issue()
	return &oauth2.Token{
		AccessToken:  s.access,
		RefreshToken: s.refresh,
		TokenType:    "Bearer",
		Expiry:       s.accessExp,
		ExpiresIn:    int64(s.lifetime / time.Second),
	}
}

// issue makes a new token pair current. Called with mu held.
func (s *authServer) issue() {
	s.access, s.refresh = "at-"+rand.Text(), "rt-"+rand.Text()
	s.accessExp = time.Now().Add(s.lifetime)
}

// revokeAccess makes the API reject the current access token before its
// expiry (as after a password change or an admin action). The refresh token
// stays valid, so one refresh must recover.
func (s *authServer) revokeAccess() {
	s.mu.Lock()
	s.access = ""
	s.mu.Unlock()
	s.revocations.Add(1)
}

// liveRefresh returns the fingerprint of the refresh token the server would
// accept now: never the value itself.
func (s *authServer) liveRefresh() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return refresh.Fingerprint(s.refresh)
}

func (s *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.refreshCalls.Add(1)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	// The client is registered for client_secret_post: credentials in the
	// body, and only there (RFC 6749 §2.3: one method per request).
	if r.Header.Get("Authorization") != "" ||
		!equal(r.PostForm.Get("client_id"), clientID) || !equal(r.PostForm.Get("client_secret"), clientSecret) {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "refresh_token" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	rt := r.PostForm.Get("refresh_token")

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent[rt] {
		// Either the client lost a race with itself or an attacker replays
		// a stolen token; the server cannot tell which, so it logs everyone
		// out.
		s.reuses.Add(1)
		s.revoked = true
		s.access, s.refresh = "", ""
	}
	if s.revoked || rt == "" || !equal(rt, s.refresh) {
		oauthError(w, http.StatusBadRequest, "invalid_grant") // never echo the token
		return
	}
	s.spent[rt] = true
	s.issue()
	s.rotations.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token":  s.access,
		"token_type":    "Bearer",
		"refresh_token": s.refresh,
		"expires_in":    int64(s.lifetime / time.Second),
	})
}

func (s *authServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	got := r.Header.Get("Authorization")
	s.mu.Lock()
	ok := s.access != "" && equal(got, "Bearer "+s.access) && time.Now().Before(s.accessExp)
	s.mu.Unlock()
	if !ok {
		s.served401.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="demo", error="invalid_token"`)
		http.Error(w, "token rejected", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"user":"demo"}` + "\n"))
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// equal compares secrets in constant time, as a real server must.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
