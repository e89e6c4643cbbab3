// Package crossproc_test proves the cross-process guarantees with real OS
// processes: the test binary re-executes itself as workers that share one
// filestore directory and one strict authorization server run by the parent.
package crossproc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"golang.org/x/oauth2"
)

// strictServer is a token endpoint and API with single-use refresh tokens:
// presenting a spent one revokes the whole family (RFC 9700 §4.14.2), and
// only the newest access token is accepted (gw2.me: one per grant).
type strictServer struct {
	t        *testing.T
	lifetime int // expires_in, seconds

	mu      sync.Mutex
	n       int
	access  string
	refresh string
	expiry  time.Time
	spent   map[string]bool
	revoked bool

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
	s := &strictServer{t: t, lifetime: lifetime, spent: map[string]bool{}}
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
	s.expiry = time.Now().Add(time.Duration(s.lifetime) * time.Second)
}

func (s *strictServer) first() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &oauth2.Token{AccessToken: s.access, RefreshToken: s.refresh, TokenType: "Bearer", Expiry: s.expiry, ExpiresIn: int64(s.lifetime)}
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
	return http.StatusOK, fmt.Sprintf(`{"access_token":%q,"refresh_token":%q,"token_type":"bearer","expires_in":%d}`, s.access, s.refresh, s.lifetime)
}

func (s *strictServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := !s.revoked && r.Header.Get("Authorization") == "Bearer "+s.access && time.Now().Before(s.expiry)
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

// report is what a worker prints when it is done.
type report struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	Reauth   int64  `json:"reauth"`
	FirstErr string `json:"first_err,omitempty"`
}

const workerEnv = "REFRESH_CROSSPROC_WORKER"

// TestMain turns the test binary into a worker when the parent says so.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(worker())
	}
	os.Exit(m.Run())
}

// worker sends requests from several goroutines until it is told to stop
// (stdin closes) or its duration ends, then prints its report.
func worker() int {
	env := func(k string) string { return os.Getenv("REFRESH_CROSSPROC_" + k) }
	store, err := filestore.New(env("DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	eng, err := refresh.New(refresh.Config{
		Store: store,
		Endpoint: &refresh.FormEndpoint{TokenURL: env("BASE") + "/token", ClientID: "c", ClientSecret: "s", Auth: refresh.AuthInBody,
			Header: http.Header{"X-Worker": {env("ID")}}},
		RefreshAttempts: 1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second})
	dur, _ := time.ParseDuration(env("DURATION"))
	goroutines, _ := strconv.Atoi(env("GOROUTINES"))
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
	fmt.Println("ready")

	var rep report
	var first sync.Once
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", env("BASE")+"/api", nil)
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return // stopping; not a failure
				}
				atomic.AddInt64(&rep.Requests, 1)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					atomic.AddInt64(&rep.Failures, 1)
					if errors.Is(err, refresh.ErrReauthRequired) {
						atomic.AddInt64(&rep.Reauth, 1)
					}
					first.Do(func() { rep.FirstErr = err.Error() })
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	// A refresh may still be saving a rotated token: wait for it, or the
	// others spend the old one once this process has exited.
	if err := eng.Close(context.Background()); err != nil {
		rep.FirstErr = err.Error()
	}
	json.NewEncoder(os.Stdout).Encode(&rep)
	return 0
}

// proc is a running worker.
type proc struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

func startWorkers(t *testing.T, n int, dir, base string, dur time.Duration, goroutines int) []*proc {
	t.Helper()
	var ps []*proc
	for i := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1",
			"REFRESH_CROSSPROC_DIR="+dir, "REFRESH_CROSSPROC_BASE="+base, "REFRESH_CROSSPROC_ID="+strconv.Itoa(i),
			"REFRESH_CROSSPROC_DURATION="+dur.String(), "REFRESH_CROSSPROC_GOROUTINES="+strconv.Itoa(goroutines))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{id: i, cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if !p.out.Scan() || p.out.Text() != "ready" {
			t.Fatalf("worker %d did not start: %q", i, p.out.Text())
		}
		ps = append(ps, p)
	}
	return ps
}

// finish stops p and returns its report.
func (p *proc) finish(t *testing.T) report {
	t.Helper()
	p.stdin.Close()
	var rep report
	if !p.out.Scan() {
		t.Fatalf("worker %d: no report", p.id)
	}
	if err := json.Unmarshal(p.out.Bytes(), &rep); err != nil {
		t.Fatalf("worker %d: report %q: %v", p.id, p.out.Text(), err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("worker %d: %v", p.id, err)
	}
	return rep
}

func seedStore(t *testing.T, s *strictServer) string {
	t.Helper()
	dir := t.TempDir()
	store, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(context.Background(), refresh.DefaultKey, s.first()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEightProcesses: 8 processes × 8 goroutines share one rotating
// refresh token whose access tokens live 2 s: every request succeeds, each
// rotation is one refresh, and the server sees no reuse.
func TestEightProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	const (
		procs    = 8
		lifetime = 2
		dur      = 8 * time.Second
	)
	s := newStrictServer(t, lifetime)
	dir := seedStore(t, s)
	ps := startWorkers(t, procs, dir, s.srv.URL, dur, 8)
	time.Sleep(dur / 2)
	s.revokeAccess() // an early revocation too: its 401s must cost one refresh
	var total report
	for _, p := range ps {
		rep := p.finish(t)
		total.Requests += rep.Requests
		total.Failures += rep.Failures
		if rep.Failures != 0 {
			t.Errorf("worker %d: %d of %d requests failed; first: %s", p.id, rep.Failures, rep.Requests, rep.FirstErr)
		}
	}
	// A worker told to stop may leave a token request that the server is
	// still handling (the client gave up, the server goes on): wait for it,
	// or it counts as a refresh without its rotation.
	s.srv.Close()
	refreshes, rotations, reuses := s.refreshes.Load(), s.rotations.Load(), s.reuses.Load()
	t.Logf("8 processes: %d requests, %d failed, %d refreshes, %d rotations, %d reuses, %d 401s",
		total.Requests, total.Failures, refreshes, rotations, reuses, s.rejected.Load())
	if reuses != 0 {
		t.Errorf("reuses = %d, want 0", reuses)
	}
	if refreshes != rotations {
		t.Errorf("refreshes = %d but rotations = %d: every refresh must rotate exactly once", refreshes, rotations)
	}
	// Tokens are refreshed at half their 2 s life, plus one revocation.
	if max := int64(dur/time.Second) + 2; rotations > max || rotations < 3 {
		t.Errorf("rotations = %d, want 3..%d for %v of traffic", rotations, max, dur)
	}
	if total.Requests < procs*10 {
		t.Errorf("only %d requests: the test proved little", total.Requests)
	}
}

// TestKilledWhileRefreshing: a process killed with SIGKILL while it holds
// the key's lock in the middle of a refresh (the server never acted on its
// request) leaves the lock to the kernel: the others continue.
func TestKilledWhileRefreshing(t *testing.T) {
	s := newStrictServer(t, 3600)
	dir := seedStore(t, s)
	s.mu.Lock()
	s.hold, s.held, s.release, s.rotate = true, make(chan string, 1), make(chan struct{}), false
	s.mu.Unlock()
	ps := startWorkers(t, 3, dir, s.srv.URL, time.Minute, 4)
	s.revokeAccess()
	victim := waitHeld(t, s)
	ps[victim].cmd.Process.Kill()
	ps[victim].cmd.Wait()
	close(s.release)

	time.Sleep(2 * time.Second) // the survivors keep working
	for _, p := range ps {
		if p.id == victim {
			continue
		}
		rep := p.finish(t)
		t.Logf("worker %d: %d requests, %d failed", p.id, rep.Requests, rep.Failures)
		if rep.Requests == 0 {
			t.Errorf("worker %d made no requests", p.id)
		}
		// Requests that were waiting on the victim's lock may fail with
		// its timeout; after that, everything must succeed.
		if rep.Reauth != 0 {
			t.Errorf("worker %d: %d re-authentication errors; first: %s", p.id, rep.Reauth, rep.FirstErr)
		}
	}
	t.Logf("after the kill: %d token requests, %d rotations, %d reuses", s.refreshes.Load(), s.rotations.Load(), s.reuses.Load())
	if s.reuses.Load() != 0 || s.rotations.Load() != 1 {
		t.Errorf("reuses = %d, rotations = %d; want 0 and 1", s.reuses.Load(), s.rotations.Load())
	}
}

// TestKilledBeforeSave: a process killed after the server rotated the
// token but before it saved the new one leaves the file intact with the
// spent refresh token. As documented, the user must log in again: the next
// refresh is refused as a reuse, each process then stops calling the token
// endpoint, and nothing loops.
func TestKilledBeforeSave(t *testing.T) {
	s := newStrictServer(t, 3600)
	dir := seedStore(t, s)
	s.mu.Lock()
	s.hold, s.held, s.release, s.rotate = true, make(chan string, 1), make(chan struct{}), true
	s.mu.Unlock()
	const procs = 3
	ps := startWorkers(t, procs, dir, s.srv.URL, time.Minute, 4)
	s.revokeAccess()
	victim := waitHeld(t, s)
	ps[victim].cmd.Process.Kill()
	ps[victim].cmd.Wait()
	close(s.release) // the server rotates; the answer goes nowhere
	time.Sleep(2 * time.Second)

	for _, p := range ps {
		if p.id == victim {
			continue
		}
		rep := p.finish(t)
		if rep.Reauth == 0 {
			t.Errorf("worker %d: no ErrReauthRequired (first error: %q)", p.id, rep.FirstErr)
		}
	}
	t.Logf("after the kill: %d token requests, %d rotations, %d reuses", s.refreshes.Load(), s.rotations.Load(), s.reuses.Load())
	// One rotation (the victim's), then at most one refused refresh per
	// surviving process: no loop.
	if got := s.refreshes.Load(); got > 1+procs-1 {
		t.Errorf("token-endpoint calls = %d, want at most %d", got, procs)
	}
	store, _ := filestore.New(dir)
	tok, err := store.Load(context.Background(), refresh.DefaultKey)
	if err != nil {
		t.Fatalf("store after the kill: %v", err)
	}
	if tok.RefreshToken != "rt-1-y8" {
		t.Errorf("stored refresh token = %q, want the original rt-1-y8 (intact file)", tok.RefreshToken)
	}
}

// waitHeld waits for the server to hold a refresh and returns the id of
// the worker that sent it.
func waitHeld(t *testing.T, s *strictServer) int {
	t.Helper()
	select {
	case id := <-s.held:
		n, _ := strconv.Atoi(strings.TrimSpace(id))
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no refresh reached the server")
		return -1
	}
}
