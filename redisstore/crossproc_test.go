package redisstore_test

// The cross-process proofs: the test binary re-executes itself as workers,
// as if on several hosts, that share nothing but the Redis store (one
// prefix) and a strict authorization server run by the parent test.

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
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
)

// authServer is a token endpoint and an API. Only the newest access token is
// accepted. With rotating set, refresh tokens are single-use: presenting a
// spent one revokes the whole family (RFC 9700 §4.14.2). Without it the
// refresh token stays the same and every refresh issues a new access token
// that replaces the previous one (Google; WSO2 with renewal off).
type authServer struct {
	lifetime int // expires_in, seconds
	rotating bool

	mu      sync.Mutex // protects the fields below
	n       int
	access  string
	refresh string
	expiry  time.Time
	spent   map[string]bool
	revoked bool

	requests atomic.Int64 // token-endpoint requests
	granted  atomic.Int64 // refreshes that issued a token (rotations, when rotating)
	reuses   atomic.Int64 // spent refresh tokens presented
	rejected atomic.Int64 // 401s from the API

	srv *httptest.Server
}

func newAuthServer(t *testing.T, lifetime int, rotating bool) *authServer {
	s := &authServer{lifetime: lifetime, rotating: rotating, spent: map[string]bool{}}
	s.refresh = "rt-0-" + randomHex(4)
	s.issue()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("GET /api", s.serveAPI)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// issue makes a new access token, and a new refresh token when rotating.
// Called with mu held (or before serving).
func (s *authServer) issue() {
	s.n++
	s.access = fmt.Sprintf("at-%d-%s", s.n, randomHex(4))
	if s.rotating {
		s.refresh = fmt.Sprintf("rt-%d-%s", s.n, randomHex(4))
	}
	s.expiry = time.Now().Add(time.Duration(s.lifetime) * time.Second)
}

func (s *authServer) current() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &oauth2.Token{AccessToken: s.access, RefreshToken: s.refresh, TokenType: "Bearer", Expiry: s.expiry, ExpiresIn: int64(s.lifetime)}
}

func (s *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	rt := r.FormValue("refresh_token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent[rt] {
		s.reuses.Add(1)
		s.revoked = true
	}
	if s.revoked || rt != s.refresh {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	if s.rotating {
		s.spent[rt] = true
	}
	s.issue()
	s.granted.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"refresh_token":%q,"token_type":"bearer","expires_in":%d}`, s.access, s.refresh, s.lifetime)
}

func (s *authServer) serveAPI(w http.ResponseWriter, r *http.Request) {
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
func (s *authServer) revokeAccess() {
	s.mu.Lock()
	s.access = "revoked"
	s.mu.Unlock()
}

// report is what a worker prints when it is done.
type report struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	FirstErr string `json:"first_err,omitempty"`
	// Set by workers whose first save pauses (see pausingStore).
	CAS           string `json:"cas,omitempty"`            // outcome of the paused save: "ok", "conflict", "error: …"
	AfterResume   int64  `json:"after_resume,omitempty"`   // requests that ended after the paused save returned
	FailedResumed int64  `json:"failed_resumed,omitempty"` // of those, failures
	LeaseLost     int64  `json:"lease_lost"`
}

const workerEnv = "REDISSTORE_TEST_WORKER"

// quietLogger drops the client's log lines (dial failures of the outage
// tests, which the tests expect).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// TestMain turns the test binary into a worker when the parent says so.
func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	if os.Getenv(workerEnv) == "1" {
		os.Exit(worker())
	}
	os.Exit(m.Run())
}

// pausingStore is a worker's store whose first CompareAndSwap prints
// "saving", sleeps, and only then saves: a window in which the parent
// freezes the process, between the token response and the save.
type pausingStore struct {
	*redisstore.Store
	first   atomic.Bool
	outcome atomic.Value // string: the paused save's outcome, once it returned
}

func (p *pausingStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if !p.first.CompareAndSwap(false, true) {
		return p.Store.CompareAndSwap(ctx, key, old, new)
	}
	fmt.Println("saving")
	time.Sleep(300 * time.Millisecond)
	err := p.Store.CompareAndSwap(ctx, key, old, new)
	outcome := "ok"
	switch {
	case errors.Is(err, refresh.ErrConflict):
		outcome = "conflict"
	case err != nil:
		outcome = "error: " + err.Error()
	}
	p.outcome.Store(outcome)
	fmt.Println("cas " + outcome)
	return err
}

// worker sends requests from several goroutines until it is told to stop
// (stdin closes) or its duration ends, then prints its report.
func worker() int {
	env := func(k string) string { return os.Getenv("REDISSTORE_TEST_" + k) }
	ttl, _ := time.ParseDuration(env("LOCK_TTL"))
	var leaseLost atomic.Int64
	rs, err := redisstore.New(newClient(redisAddr()), redisstore.Options{
		Prefix:    env("PREFIX"),
		LockTTL:   ttl,
		LeaseLost: func(string) { leaseLost.Add(1) },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var store refresh.TokenStore = rs
	var paused *pausingStore
	if env("PAUSE_SAVE") == "1" {
		paused = &pausingStore{Store: rs}
		store = paused
	}
	eng, err := refresh.New(refresh.Config{
		Store: store,
		Endpoint: &refresh.FormEndpoint{TokenURL: env("BASE") + "/token", ClientID: "c", ClientSecret: "s", Auth: refresh.AuthInBody,
			Header: http.Header{"X-Worker": {env("HOST") + "/" + env("ID")}}},
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
				resumed := paused != nil && paused.outcome.Load() != nil
				atomic.AddInt64(&rep.Requests, 1)
				if resumed {
					atomic.AddInt64(&rep.AfterResume, 1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					atomic.AddInt64(&rep.Failures, 1)
					if resumed {
						atomic.AddInt64(&rep.FailedResumed, 1)
					}
					first.Do(func() { rep.FirstErr = err.Error() })
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	if paused != nil {
		if o, ok := paused.outcome.Load().(string); ok {
			rep.CAS = o
		}
	}
	rep.LeaseLost = leaseLost.Load()
	json.NewEncoder(os.Stdout).Encode(&rep)
	return 0
}

// proc is a running worker.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // its stdout, line by line; closed at its end
}

// workerConf is what a worker is started with.
type workerConf struct {
	host, id   string
	prefix     string
	base       string
	dur        time.Duration
	goroutines int
	lockTTL    time.Duration
	pauseSave  bool
}

func startWorker(t *testing.T, c workerConf) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	pause := "0"
	if c.pauseSave {
		pause = "1"
	}
	cmd.Env = append(os.Environ(), workerEnv+"=1",
		"REDISSTORE_TEST_PREFIX="+c.prefix, "REDISSTORE_TEST_BASE="+c.base,
		"REDISSTORE_TEST_HOST="+c.host, "REDISSTORE_TEST_ID="+c.id,
		"REDISSTORE_TEST_DURATION="+c.dur.String(), "REDISSTORE_TEST_GOROUTINES="+strconv.Itoa(c.goroutines),
		"REDISSTORE_TEST_LOCK_TTL="+c.lockTTL.String(), "REDISSTORE_TEST_PAUSE_SAVE="+pause,
		"REFRESH_TEST_REDIS="+redisAddr())
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: c.host + "/" + c.id, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT) // if the test stopped it
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	if line := p.next(t, 30*time.Second); line != "ready" {
		t.Fatalf("worker %s did not start: %q", p.name, line)
	}
	return p
}

// next returns the next line the worker prints, failing the test if none
// comes within d.
func (p *proc) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("worker %s: ended its output", p.name)
		}
		return line
	case <-time.After(d):
		t.Fatalf("worker %s: no output within %v", p.name, d)
		return ""
	}
}

// finish stops p and returns its report.
func (p *proc) finish(t *testing.T) report {
	t.Helper()
	p.stdin.Close()
	var rep report
	for {
		line := p.next(t, 30*time.Second)
		if !strings.HasPrefix(line, "{") {
			continue // a line of the paused save
		}
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			t.Fatalf("worker %s: report %q: %v", p.name, line, err)
		}
		break
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("worker %s: %v", p.name, err)
	}
	return rep
}

// seed saves the server's current token in the Redis store with prefix.
func seed(t *testing.T, c redis.UniversalClient, prefix string, tok *oauth2.Token) *redisstore.Store {
	t.Helper()
	s, err := redisstore.New(c, redisstore.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(context.Background(), refresh.DefaultKey, tok); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSixProcessesThreeHosts: 6 processes, 2 on each of 3 "hosts", with 8
// goroutines each, share one rotating refresh token through Redis, with
// access tokens that live 2 s and a revocation halfway: every request
// succeeds, each token request is one rotation, and the server sees no
// reuse.
func TestSixProcessesThreeHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 processes for 8 s")
	}
	c := testClient(t)
	const (
		hosts, perHost = 3, 2
		lifetime       = 2
		dur            = 8 * time.Second
		goroutines     = 8
	)
	s := newAuthServer(t, lifetime, true)
	prefix := testPrefix(t, c)
	store := seed(t, c, prefix, s.current())

	var ps []*proc
	for h := range hosts {
		for i := range perHost {
			ps = append(ps, startWorker(t, workerConf{
				host: "host-" + string(rune('a'+h)), id: strconv.Itoa(i), prefix: prefix, base: s.srv.URL,
				dur: dur, goroutines: goroutines, lockTTL: redisstore.DefaultLockTTL,
			}))
		}
	}
	time.Sleep(dur / 2)
	s.revokeAccess() // its 401s must cost one refresh, not one per process

	var total report
	for _, p := range ps {
		rep := p.finish(t)
		total.Requests += rep.Requests
		total.Failures += rep.Failures
		total.LeaseLost += rep.LeaseLost
		if rep.Failures != 0 {
			t.Errorf("worker %s: %d of %d requests failed; first: %s", p.name, rep.Failures, rep.Requests, rep.FirstErr)
		}
	}
	requests, rotations, reuses := s.requests.Load(), s.granted.Load(), s.reuses.Load()
	t.Logf("%d processes on %d hosts: %d API requests, %d failed, %d token requests, %d rotations, %d reuses, %d 401s, %d leases lost",
		len(ps), hosts, total.Requests, total.Failures, requests, rotations, reuses, s.rejected.Load(), total.LeaseLost)
	if reuses != 0 {
		t.Errorf("reuses = %d, want 0", reuses)
	}
	if requests != rotations {
		t.Errorf("token requests = %d but rotations = %d: every refresh must rotate exactly once", requests, rotations)
	}
	// Tokens are refreshed at half their 2 s life, plus one revocation.
	if most := int64(dur/time.Second) + 3; rotations > most || rotations < 3 {
		t.Errorf("rotations = %d, want 3..%d for %v of traffic", rotations, most, dur)
	}
	if total.Requests < int64(len(ps))*10 {
		t.Errorf("only %d requests: the test proved little", total.Requests)
	}
	if total.LeaseLost != 0 {
		t.Errorf("%d leases lost, want 0", total.LeaseLost)
	}
	// The store holds the server's newest token.
	got, err := store.Load(context.Background(), refresh.DefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	if want := s.current(); got.RefreshToken != want.RefreshToken {
		t.Errorf("stored refresh token %q, want the server's newest %q", got.RefreshToken, want.RefreshToken)
	}
}

// TestFrozenHolder: a process frozen with SIGSTOP after the server gave it
// a new token and before it saved it, for longer than its lease, is
// overtaken by another process that refreshes and saves. Resumed, the
// frozen one's compare-and-swap is refused, the newer token stays, and the
// frozen one adopts it: its requests succeed.
//
// The server does not rotate refresh tokens here: with single-use refresh
// tokens, the frozen holder's spent refresh token makes a reuse
// unavoidable for whoever refreshes next, whatever the store does.
func TestFrozenHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3 processes")
	}
	c := testClient(t)
	const ttl = time.Second
	s := newAuthServer(t, 3600, false)
	prefix := testPrefix(t, c)
	store := seed(t, c, prefix, s.current())
	first := s.current()
	conf := workerConf{host: "host-a", id: "frozen", prefix: prefix, base: s.srv.URL, dur: time.Minute, goroutines: 4, lockTTL: ttl}

	// The victim alone: the revocation makes it refresh, and it stops
	// between the token response and the save.
	conf.pauseSave = true
	victim := startWorker(t, conf)
	time.Sleep(200 * time.Millisecond)
	s.revokeAccess()
	if line := victim.next(t, 10*time.Second); line != "saving" {
		t.Fatalf("victim printed %q, want \"saving\"", line)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	victimsToken := s.current().AccessToken // issued to the victim, unsaved

	// It holds the lock; its lease runs out, and Redis expires the lock.
	lockKey := redisstore.LockKey(store, refresh.DefaultKey)
	if n := c.Exists(context.Background(), lockKey).Val(); n != 1 {
		t.Fatalf("the victim, stopped while saving, does not hold the lock")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(context.Background(), lockKey).Val() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the frozen holder's lock still exists 5 s after it stopped (lease %v)", ttl)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Two others, on other hosts, start with the stored token, which the
	// victim's refresh made stale: their 401s make one of them refresh.
	conf.pauseSave = false
	var others []*proc
	for _, host := range []string{"host-b", "host-c"} {
		conf.host, conf.id = host, "0"
		others = append(others, startWorker(t, conf))
	}
	var newer *oauth2.Token
	deadline = time.Now().Add(10 * time.Second)
	for {
		tok, err := store.Load(context.Background(), refresh.DefaultKey)
		if err == nil && tok.AccessToken != first.AccessToken {
			newer = tok
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no other process saved a new token within 10 s (last load: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if newer.AccessToken == victimsToken {
		t.Fatalf("the store holds the frozen victim's token before it resumed")
	}

	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if line := victim.next(t, 10*time.Second); line != "cas conflict" {
		t.Errorf("the resumed victim's save: got %q, want \"cas conflict\"", line)
	}
	time.Sleep(time.Second) // the victim goes on with the adopted token

	rep := victim.finish(t)
	t.Logf("victim: %d requests (%d after resuming), %d failed, save %q, leases lost %d; first error: %q",
		rep.Requests, rep.AfterResume, rep.Failures, rep.CAS, rep.LeaseLost, rep.FirstErr)
	if rep.CAS != "conflict" {
		t.Errorf("victim's paused save: got %q, want \"conflict\"", rep.CAS)
	}
	if rep.AfterResume == 0 || rep.FailedResumed != 0 {
		t.Errorf("victim after resuming: %d of %d requests failed, want all of at least one to succeed; first error: %q",
			rep.FailedResumed, rep.AfterResume, rep.FirstErr)
	}
	if rep.Failures != 0 {
		t.Errorf("victim: %d of %d requests failed; first: %s", rep.Failures, rep.Requests, rep.FirstErr)
	}
	if rep.LeaseLost != 1 {
		t.Errorf("victim: LeaseLost called %d times, want 1", rep.LeaseLost)
	}
	for _, p := range others {
		rep := p.finish(t)
		if rep.Failures != 0 || rep.Requests == 0 {
			t.Errorf("worker %s: %d of %d requests failed; first: %s", p.name, rep.Failures, rep.Requests, rep.FirstErr)
		}
	}
	got, err := store.Load(context.Background(), refresh.DefaultKey)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != newer.AccessToken || got.AccessToken == victimsToken {
		t.Errorf("stored access token %q, want the other process's %q (the victim's was %q)", got.AccessToken, newer.AccessToken, victimsToken)
	}
	if want := s.current().AccessToken; got.AccessToken != want {
		t.Errorf("stored access token %q, want the server's current %q", got.AccessToken, want)
	}
	t.Logf("server: %d token requests, %d granted, %d 401s", s.requests.Load(), s.granted.Load(), s.rejected.Load())
	if n := s.granted.Load(); n != 2 {
		t.Errorf("refreshes granted = %d, want 2 (the victim's, and the one that overtook it)", n)
	}
}
