package crossproc_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// strictServer is a token endpoint and API with single-use refresh tokens:
// presenting a spent one revokes the whole family (RFC 9700 §4.14.2), and
// only the newest access token is accepted (gw2.me: one per grant).
type strictServer struct {
	t        *testing.T
	lifetime int // expires_in, seconds

	mu      sync.Mutex
	n       int // generation of the current pair: 1 for the first
	access  string
	refresh string
	life    int // expires_in of the current pair
	expiry  time.Time
	spent   map[string]bool
	revoked bool
	// lifetimes, if set, are the expires_in of the next pairs issued,
	// before lifetime applies again.
	lifetimes []int
	// served maps "worker/goroutine" (the X-Worker and X-Goroutine headers)
	// to the newest generation the API accepted from it.
	served map[string]int

	// hold, when set, stops the next refresh until release is closed;
	// held receives the worker id of the request it holds. rotate says
	// whether the held request rotates the token at once and is answered
	// only on release (true), or is dropped without effect on release, as
	// if it never arrived (false).
	hold    bool
	held    chan string
	release chan struct{}
	rotate  bool

	refreshes atomic.Int64 // token-endpoint requests
	rotations atomic.Int64 // successful refreshes
	reuses    atomic.Int64 // spent refresh tokens presented
	rejected  atomic.Int64 // 401s from the API

	srv *httptest.Server
}

func newStrictServer(t *testing.T, lifetime int) *strictServer {
	s := &strictServer{t: t, lifetime: lifetime, spent: map[string]bool{}, served: map[string]int{}}
	s.issue()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("GET /api", s.serveAPI)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// issue makes a new pair. Called with mu held (or before serving).
func (s *strictServer) issue() {
	s.n++
	s.access, s.refresh = fmt.Sprintf("at-%d-x7", s.n), fmt.Sprintf("rt-%d-y8", s.n)
	s.life = s.lifetime
	if len(s.lifetimes) > 0 {
		s.life, s.lifetimes = s.lifetimes[0], s.lifetimes[1:]
	}
	s.expiry = time.Now().Add(time.Duration(s.life) * time.Second)
}

func (s *strictServer) first() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &oauth2.Token{AccessToken: s.access, RefreshToken: s.refresh, TokenType: "Bearer", Expiry: s.expiry, ExpiresIn: int64(s.life)}
}

func (s *strictServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.refreshes.Add(1)
	rt := r.FormValue("refresh_token")
	s.mu.Lock()
	hold, rotate := s.hold, s.rotate
	s.hold = false
	if hold && !rotate {
		// As if the request never arrived: hold it, then drop it.
		s.mu.Unlock()
		s.held <- r.Header.Get("X-Worker")
		<-s.release
		http.Error(w, "dropped", http.StatusServiceUnavailable)
		return
	}
	status, body := s.grant(rt)
	s.mu.Unlock()
	if hold {
		// The server has rotated; the answer waits, so the test can kill
		// the client between the token response and its save.
		s.held <- r.Header.Get("X-Worker")
		<-s.release
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// grant applies a refresh with rt and returns the answer. Called with mu
// held.
func (s *strictServer) grant(rt string) (int, string) {
	if s.spent[rt] {
		s.reuses.Add(1)
		s.revoked = true
	}
	if s.revoked || rt != s.refresh {
		return http.StatusBadRequest, `{"error":"invalid_grant"}`
	}
	s.spent[rt] = true
	s.issue()
	s.rotations.Add(1)
	return http.StatusOK, fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"token_type":"bearer","expires_in":%d}`, s.access, s.refresh, s.life)
}

func (s *strictServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := !s.revoked && r.Header.Get("Authorization") == "Bearer "+s.access && time.Now().Before(s.expiry)
	if ok {
		s.served[r.Header.Get("X-Worker")+"/"+r.Header.Get("X-Goroutine")] = s.n
	}
	s.mu.Unlock()
	if !ok {
		s.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	io.WriteString(w, "ok")
}

// revokeAccess makes the API refuse the current access token.
func (s *strictServer) revokeAccess() {
	s.mu.Lock()
	s.access = "revoked"
	s.mu.Unlock()
}

// expireAccess makes the API refuse the current access token as expired,
// although its holders still take it for valid.
func (s *strictServer) expireAccess() {
	s.mu.Lock()
	s.expiry = time.Now()
	s.mu.Unlock()
}

// waitServed waits until the API has accepted a token of generation gen or
// newer from each of clients goroutines (counted by their X-Worker and
// X-Goroutine headers), and fails the test if that takes minutes: a
// watchdog against a hang, not a measure of speed.
func (s *strictServer) waitServed(t *testing.T, clients, gen int, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s.mu.Lock()
		n := 0
		for _, g := range s.served {
			if g >= gen {
				n++
			}
		}
		cur := s.n
		s.mu.Unlock()
		if n >= clients {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 2 minutes, %d of %d goroutines were served generation %d or newer (the server is at %d)", what, n, clients, gen, cur)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
