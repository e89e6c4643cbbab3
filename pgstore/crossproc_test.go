package pgstore_test

// The cross-process proofs: the test binary re-executes itself as workers,
// as if on several hosts, that share one PostgreSQL table and one strict
// authorization server run by the parent test.

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

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// authServer is a token endpoint and an API. In the default mode refresh
// tokens are single-use and rotate: presenting a spent one counts as a
// reuse and revokes the whole family (RFC 9700 §4.14.2). With renew set,
// the refresh token stays the same (as at Google, or WSO2 with renewal
// off). Either way each refresh issues a new access token and kills the
// previous one: the API accepts only the newest.
type authServer struct {
	lifetime int  // expires_in, seconds
	renew    bool // refresh tokens are not single-use

	mu       sync.Mutex
	n        int
	access   string
	refresh  string
	expiry   time.Time
	spent    map[string]bool
	revoked  bool                      // the family is revoked: nothing works
	accepted map[string]map[string]int // X-Worker → access token → accepted API requests

	tokenRequests atomic.Int64 // token-endpoint requests
	rotations     atomic.Int64 // successful refreshes
	reuses        atomic.Int64 // spent refresh tokens presented
	rejected      atomic.Int64 // 401s from the API

	srv *httptest.Server
}

func newAuthServer(t *testing.T, lifetime int, renew bool) *authServer {
	s := &authServer{lifetime: lifetime, renew: renew, spent: map[string]bool{}, accepted: map[string]map[string]int{}}
	s.issue()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("GET /api", s.serveAPI)
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// issue makes a new access token, and a new refresh token unless renew.
// Called with mu held (or before serving).
func (s *authServer) issue() {
	s.n++
	s.access = fmt.Sprintf("at-%d-q3", s.n)
	if !s.renew || s.refresh == "" {
		s.refresh = fmt.Sprintf("rt-%d-w9", s.n)
	}
	s.expiry = time.Now().Add(time.Duration(s.lifetime) * time.Second)
}

// current returns the newest token.
func (s *authServer) current() *oauth2.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &oauth2.Token{AccessToken: s.access, RefreshToken: s.refresh, TokenType: "Bearer", Expiry: s.expiry, ExpiresIn: int64(s.lifetime)}
}

func (s *authServer) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenRequests.Add(1)
	rt := r.FormValue("refresh_token")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent[rt] {
		s.reuses.Add(1)
		s.revoked = true
	}
	if s.revoked || rt != s.refresh || r.FormValue("grant_type") != "refresh_token" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	if !s.renew {
		s.spent[rt] = true
	}
	s.issue()
	s.rotations.Add(1)
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"refresh_token":%q,"token_type":"bearer","expires_in":%d}`, s.access, s.refresh, s.lifetime)
}

func (s *authServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	at, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok := !s.revoked && at == s.access && time.Now().Before(s.expiry)
	if ok {
		who := r.Header.Get("X-Worker")
		if s.accepted[who] == nil {
			s.accepted[who] = map[string]int{}
		}
		s.accepted[who][at]++
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
func (s *authServer) revokeAccess() {
	s.mu.Lock()
	s.access = "revoked"
	s.mu.Unlock()
}

// acceptedFor returns how many API requests of worker were accepted with
// access token at.
func (s *authServer) acceptedFor(worker, at string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted[worker][at]
}

// report is what a worker prints when it is done.
type report struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	Reauth   int64  `json:"reauth"`
	FirstErr string `json:"first_err,omitempty"`

	// With freeze: the outcome of the first CompareAndSwap, and the
	// requests that started after it and succeeded.
	FirstCAS    string `json:"first_cas,omitempty"`
	CASConflict bool   `json:"cas_conflict,omitempty"`
	OKAfterCAS  int64  `json:"ok_after_cas,omitempty"`
}

// workerMain sends requests from several goroutines until stdin closes or
// its duration ends, then prints its report. Its environment:
// PGSTORE_TEST_{URL,SCHEMA,BASE,ID,HOST,DURATION,GOROUTINES,FREEZE}.
func workerMain() int {
	env := func(k string) string { return os.Getenv("PGSTORE_TEST_" + k) }
	id := env("HOST") + "/" + env("ID")
	cfg, err := pgxpool.ParseConfig(env("URL"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.RuntimeParams["application_name"] = "pgstore-test-worker-" + id
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	pg, err := pgstore.New(pool, pgstore.Options{Schema: env("SCHEMA")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var store refresh.TokenStore = pg
	var fz *freezer
	if env("FREEZE") == "1" {
		fz = &freezer{Store: pg, saved: make(chan struct{})}
		store = fz
	}
	eng, err := refresh.New(refresh.Config{
		Store: store,
		Endpoint: &refresh.FormEndpoint{TokenURL: env("BASE") + "/token", ClientID: "c", ClientSecret: "s", Auth: refresh.AuthInBody,
			Header: http.Header{"X-Worker": {id}}},
		RefreshAttempts: 1,
		RefreshTimeout:  15 * time.Second,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	client := eng.Client(&http.Client{Timeout: 30 * time.Second, Transport: tagged{id}})
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
				afterCAS := fz != nil && fz.done()
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
				} else if afterCAS {
					atomic.AddInt64(&rep.OKAfterCAS, 1)
				}
			}
		})
	}
	wg.Wait()
	if fz != nil && fz.done() {
		rep.FirstCAS, rep.CASConflict = fz.result, fz.conflict
	}
	json.NewEncoder(os.Stdout).Encode(&rep)
	return 0
}

// tagged names the worker in the API requests it sends.
type tagged struct{ id string }

func (tg tagged) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Worker", tg.id)
	return http.DefaultTransport.RoundTrip(r)
}

// freezer is a *pgstore.Store whose first CompareAndSwap says "saving" on
// stdout and pauses before it saves: the moment the parent stops the
// process, with a new token from the server that is not in the store yet.
type freezer struct {
	*pgstore.Store
	once     sync.Once
	saved    chan struct{} // closed when the first CompareAndSwap returned
	result   string        // its error, or "ok"; set before saved is closed
	conflict bool          // whether it wrapped refresh.ErrConflict; idem
}

func (f *freezer) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	first := false
	f.once.Do(func() { first = true })
	if !first {
		return f.Store.CompareAndSwap(ctx, key, old, new)
	}
	fmt.Println("saving")
	time.Sleep(500 * time.Millisecond) // stopped here by the parent
	err := f.Store.CompareAndSwap(ctx, key, old, new)
	f.result, f.conflict = "ok", errors.Is(err, refresh.ErrConflict)
	if err != nil {
		f.result = err.Error()
	}
	close(f.saved)
	return err
}

func (f *freezer) done() bool {
	select {
	case <-f.saved:
		return true
	default:
		return false
	}
}

// proc is a running worker; lines receives what it prints.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

type workerSpec struct {
	host, id   string
	goroutines int
	dur        time.Duration
	freeze     bool
}

func startWorker(t *testing.T, schema, base string, w workerSpec) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	freeze := "0"
	if w.freeze {
		freeze = "1"
	}
	cmd.Env = append(os.Environ(), roleEnv+"=worker",
		"PGSTORE_TEST_URL="+dbURL(), "PGSTORE_TEST_SCHEMA="+schema, "PGSTORE_TEST_BASE="+base,
		"PGSTORE_TEST_HOST="+w.host, "PGSTORE_TEST_ID="+w.id, "PGSTORE_TEST_DURATION="+w.dur.String(),
		"PGSTORE_TEST_GOROUTINES="+strconv.Itoa(w.goroutines), "PGSTORE_TEST_FREEZE="+freeze)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: w.host + "/" + w.id, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	return p
}

// startWorkers starts the workers at once and waits until each is ready.
func startWorkers(t *testing.T, schema, base string, specs ...workerSpec) []*proc {
	t.Helper()
	var ps []*proc
	for _, w := range specs {
		ps = append(ps, startWorker(t, schema, base, w))
	}
	for _, p := range ps {
		p.expect(t, "ready", 30*time.Second)
	}
	return ps
}

// expect waits for p to print want.
func (p *proc) expect(t *testing.T, want string, within time.Duration) {
	t.Helper()
	select {
	case got, ok := <-p.lines:
		if !ok || got != want {
			t.Fatalf("worker %s printed %q (open: %v), want %q", p.name, got, ok, want)
		}
	case <-time.After(within):
		t.Fatalf("worker %s did not print %q within %v", p.name, want, within)
	}
}

// finish stops the workers together (a race-enabled binary lingers for a
// second at exit) and returns their reports.
func finish(t *testing.T, ps []*proc) []report {
	t.Helper()
	for _, p := range ps {
		p.stdin.Close()
	}
	var reps []report
	for _, p := range ps {
		reps = append(reps, p.finish(t))
	}
	return reps
}

// finish stops p and returns its report.
func (p *proc) finish(t *testing.T) report {
	t.Helper()
	p.stdin.Close()
	var rep report
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("worker %s: no report", p.name)
		}
		if err := json.Unmarshal([]byte(line), &rep); err != nil {
			t.Fatalf("worker %s: report %q: %v", p.name, line, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("worker %s: no report within 30 s", p.name)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("worker %s: %v", p.name, err)
	}
	return rep
}

// crossprocStore returns a migrated store in a new schema, holding the
// server's current token under refresh.DefaultKey.
func crossprocStore(t *testing.T, s *authServer) (*pgstore.Store, string) {
	t.Helper()
	schema := testSchema(t)
	store := migrated(t, testPool(t), pgstore.Options{Schema: schema})
	if err := store.Save(ctx5s(t), refresh.DefaultKey, s.current()); err != nil {
		t.Fatal(err)
	}
	return store, schema
}

// TestSixProcessesThreeHosts: 6 processes, 2 on each of 3 "hosts", × 7
// goroutines share one rotating refresh token whose access tokens live
// 2 s, through the PostgreSQL store, with one revocation mid-run: every
// request succeeds, each token request is one rotation, and the server
// sees no reuse.
func TestSixProcessesThreeHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 6 processes")
	}
	const (
		hosts, perHost = 3, 2
		goroutines     = 7
		dur            = 8 * time.Second
	)
	s := newAuthServer(t, 2, false)
	_, schema := crossprocStore(t, s)
	var specs []workerSpec
	for h := range hosts {
		for w := range perHost {
			specs = append(specs, workerSpec{host: fmt.Sprint("host", h), id: fmt.Sprint(w), goroutines: goroutines, dur: 2 * dur})
		}
	}
	start := time.Now()
	ps := startWorkers(t, schema, s.srv.URL, specs...)
	t.Logf("workers ready after %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(dur / 2)
	s.revokeAccess() // its 401s must cost exactly one refresh too
	time.Sleep(dur / 2)

	var total report
	for i, rep := range finish(t, ps) {
		p := ps[i]
		total.Requests += rep.Requests
		total.Failures += rep.Failures
		if rep.Failures != 0 {
			t.Errorf("worker %s: %d of %d requests failed; first: %s", p.name, rep.Failures, rep.Requests, rep.FirstErr)
		}
		if rep.Requests == 0 {
			t.Errorf("worker %s made no requests", p.name)
		}
	}
	requests, rotations, reuses := s.tokenRequests.Load(), s.rotations.Load(), s.reuses.Load()
	t.Logf("%d processes on %d hosts × %d goroutines, %v: %d requests, %d failed, %d token requests, %d rotations, %d reuses, %d 401s",
		len(ps), hosts, goroutines, dur, total.Requests, total.Failures, requests, rotations, reuses, s.rejected.Load())
	if reuses != 0 {
		t.Errorf("reuses = %d, want 0", reuses)
	}
	if requests != rotations {
		t.Errorf("token requests = %d but rotations = %d: every token request must rotate exactly once", requests, rotations)
	}
	if rotations < 3 {
		t.Errorf("rotations = %d: 2 s tokens over %v and a revocation need at least 3", rotations, dur)
	}
	if total.Requests < int64(len(ps))*10 {
		t.Errorf("only %d requests: the test proved little", total.Requests)
	}
}

// TestStoppedWorkerCannotOverwrite: a worker frozen with SIGSTOP after the
// server gave it a new token but before it saved it loses its lock (the
// parent ends its lock's session, as a server-side timeout would), another
// worker refreshes, and after SIGCONT the frozen worker's save is refused:
// it adopts the stored token instead of overwriting it, and goes on with it.
//
// The server's refresh tokens are not single-use here: with rotation, a
// holder frozen after the server spent its refresh token leaves the store
// with a spent one, and whoever refreshes next is a reuse, whatever the
// store does.
func TestStoppedWorkerCannotOverwrite(t *testing.T) {
	s := newAuthServer(t, 3600, true)
	store, schema := crossprocStore(t, s)
	admin := testPool(t)
	key := refresh.DefaultKey
	id := lockID(t, store, key)
	stored := func() *oauth2.Token {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tok, err := store.Load(ctx, key)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return tok
	}
	first := stored()

	// The victim's first request is refused, so it refreshes at once.
	s.revokeAccess()
	victim := startWorkers(t, schema, s.srv.URL, workerSpec{host: "host0", id: "victim", goroutines: 4, dur: time.Minute, freeze: true})[0]
	victim.expect(t, "saving", 20*time.Second)
	if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.cmd.Process.Signal(syscall.SIGCONT) })
	unsaved := s.current() // the token only the frozen victim has
	if got := stored(); !refresh.SameToken(got, first) || unsaved.AccessToken == first.AccessToken {
		t.Fatalf("when frozen: stored %q, server's newest %q; want the first token %q stored and a newer one issued",
			got.AccessToken, unsaved.AccessToken, first.AccessToken)
	}

	// Its lock's session ends (an idle or session timeout would do the
	// same); the frozen process does not notice.
	terminate(t, admin, holder(t, admin, id))
	waitUnlocked(t, admin, id, 5*time.Second)

	// The others find the access token refused and refresh.
	s.revokeAccess()
	others := startWorkers(t, schema, s.srv.URL,
		workerSpec{host: "host1", id: "0", goroutines: 4, dur: time.Minute},
		workerSpec{host: "host2", id: "0", goroutines: 4, dur: time.Minute})
	var newer *oauth2.Token
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if newer = stored(); !refresh.SameToken(newer, first) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no other worker saved a new token within 20 s")
		}
	}
	if newer.AccessToken == unsaved.AccessToken {
		t.Fatalf("the store holds the frozen worker's token while it is stopped")
	}

	if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // requests with the adopted token

	reps := finish(t, append([]*proc{victim}, others...))
	rep := reps[0]
	t.Logf("frozen worker: first CompareAndSwap %q; %d requests, %d failed, %d succeeded after it", rep.FirstCAS, rep.Requests, rep.Failures, rep.OKAfterCAS)
	if !rep.CASConflict {
		t.Errorf("the frozen worker's save after SIGCONT: %q, want a refusal wrapping refresh.ErrConflict", rep.FirstCAS)
	}
	if rep.Failures != 0 {
		t.Errorf("frozen worker: %d of %d requests failed; first: %s", rep.Failures, rep.Requests, rep.FirstErr)
	}
	if rep.OKAfterCAS == 0 {
		t.Errorf("frozen worker: no successful request after its save was refused")
	}
	if n := s.acceptedFor("host0/victim", newer.AccessToken); n == 0 {
		t.Errorf("the API accepted no request of the frozen worker with the adopted token")
	}
	if n := s.acceptedFor("host0/victim", unsaved.AccessToken); n != 0 {
		t.Errorf("the API accepted %d requests of the frozen worker with its own, revoked token", n)
	}
	for i, r := range reps[1:] {
		t.Logf("worker %s: %d requests, %d failed", others[i].name, r.Requests, r.Failures)
		if r.Failures != 0 {
			t.Errorf("worker %s: %d of %d requests failed; first: %s", others[i].name, r.Failures, r.Requests, r.FirstErr)
		}
	}
	if granted, waiting := lockSessions(t, admin, id); len(granted)+len(waiting) != 0 {
		t.Errorf("after the workers exited: lock held by %v, waiting %v", granted, waiting)
	}
	if got := stored(); !refresh.SameToken(got, newer) {
		t.Errorf("stored at the end: %q, want the newer %q (not the frozen worker's %q)", got.AccessToken, newer.AccessToken, unsaved.AccessToken)
	}
	requests, rotations := s.tokenRequests.Load(), s.rotations.Load()
	t.Logf("token requests %d, refreshes %d, reuses %d, 401s %d", requests, rotations, s.reuses.Load(), s.rejected.Load())
	// One refresh by the frozen worker, one by the others together.
	if requests != 2 || rotations != 2 {
		t.Errorf("token requests = %d, refreshes = %d; want 2 and 2", requests, rotations)
	}
}
