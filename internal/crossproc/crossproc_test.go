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
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"golang.org/x/oauth2"
)

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
	for g := range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", env("BASE")+"/api", nil)
				req.Header.Set("X-Worker", env("ID"))
				req.Header.Set("X-Goroutine", strconv.Itoa(g))
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
	return seedToken(t, s.first())
}

// seedToken returns a new filestore directory that holds tok.
func seedToken(t *testing.T, tok *oauth2.Token) string {
	t.Helper()
	dir := t.TempDir()
	store, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(context.Background(), refresh.DefaultKey, tok); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEightProcesses: 8 processes × 8 goroutines share one rotating
// refresh token, and the API accepts only the newest access token. Each
// event that ends a token costs exactly one refresh among all the
// processes, no request fails, and the server sees no reuse. The events:
// the stored token has expired when the processes start; the token that
// replaces it lives 1 s, so it is refreshed before it expires while the
// requests flow; the API then revokes the next one, and then takes the next
// one for expired although its holders do not.
//
// The next event comes only once every goroutine of every process has been
// served with the token the last one brought. So no request meets two
// rotations (the engine follows a replaced token once per request, by
// design), whatever the load of the machine, and the counts are exact.
func TestEightProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 8 processes")
	}
	const procs, goroutines = 8, 8
	s := newStrictServer(t, 3600)
	s.mu.Lock()
	s.lifetimes = []int{1} // the token of the first refresh
	s.mu.Unlock()
	seed := s.first() // generation 1
	seed.Expiry = time.Now().Add(-time.Minute)
	dir := seedToken(t, seed)
	ps := startWorkers(t, procs, dir, s.srv.URL, 5*time.Minute, goroutines)

	s.waitServed(t, procs*goroutines, 3, "the expired token, then its 1 s successor, replaced")
	s.revokeAccess()
	s.waitServed(t, procs*goroutines, 4, "the revoked token replaced")
	s.expireAccess()
	s.waitServed(t, procs*goroutines, 5, "the token the API took for expired replaced")

	var total report
	for _, p := range ps {
		rep := p.finish(t)
		total.Requests += rep.Requests
		total.Failures += rep.Failures
		if rep.Failures != 0 {
			t.Errorf("worker %d: %d of %d requests failed; first: %s", p.id, rep.Failures, rep.Requests, rep.FirstErr)
		}
	}
	// Nothing is due when the workers stop, so no token request should be
	// left; closing the server waits for one anyway, so that it is counted.
	s.srv.Close()
	refreshes, rotations, reuses := s.refreshes.Load(), s.rotations.Load(), s.reuses.Load()
	t.Logf("%d processes: %d requests, %d failed, %d refreshes, %d rotations, %d reuses, %d 401s",
		procs, total.Requests, total.Failures, refreshes, rotations, reuses, s.rejected.Load())
	if reuses != 0 {
		t.Errorf("reuses = %d, want 0", reuses)
	}
	if refreshes != rotations {
		t.Errorf("refreshes = %d but rotations = %d: every refresh must rotate exactly once", refreshes, rotations)
	}
	if rotations != 4 {
		t.Errorf("rotations = %d, want 4: one per event (expired when stored, due while in use, revoked, expired at the API)", rotations)
	}
	store, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := store.Load(context.Background(), refresh.DefaultKey)
	if err != nil {
		t.Fatalf("store after the run: %v", err)
	}
	if tok.RefreshToken != "rt-5-y8" {
		t.Errorf("the store does not hold the newest token (generation 5)")
	}
}
