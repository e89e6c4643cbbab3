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
