package conformance_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

// Scenario 4: OS processes sharing a filestore directory.
const (
	procs          = 5
	procGoroutines = 4
	procDuration   = 9 * time.Second
	procLifespan   = 2 * time.Second
	procPace       = 5 * time.Millisecond
)

const workerEnv = "REFRESH_CONFORMANCE_WORKER"

// TestMain turns the test binary into a worker when the parent says so.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(worker())
	}
	os.Exit(m.Run())
}

// worker sends requests through its own engine over the shared filestore
// until its duration ends or stdin closes, then prints its report.
func worker() int {
	env := func(k string) string { return os.Getenv("REFRESH_CONFORMANCE_" + k) }
	store, err := filestore.New(env("DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	eng, err := refresh.New(refresh.Config{
		Store: store,
		Endpoint: &refresh.FormEndpoint{TokenURL: env("BASE") + "/token", ClientID: clientID, ClientSecret: clientSecret,
			Auth: refresh.AuthBasic, Header: http.Header{"X-Engine": {"proc-" + env("ID")}}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	dur, err := time.ParseDuration(env("DURATION"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // the parent went away
	fmt.Println("ready")
	rep := hammer(ctx, eng.Client(&http.Client{Timeout: 30 * time.Second}), env("BASE")+"/api", procGoroutines, procPace)
	json.NewEncoder(os.Stdout).Encode(&rep)
	return 0
}

// TestProcesses (scenario 4): 5 processes × 4 goroutines, each process with
// its own engine over one filestore directory, share one fosite grant with
// 2 s access tokens for 9 s: every request succeeds, fosite sees no reuse
// and no error, and each refresh is one rotation.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 5 processes for 9 s")
	}
	s := newFositeServer(t, serverOptions{accessLifespan: procLifespan})
	dir := t.TempDir()
	store, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(context.Background(), refresh.DefaultKey, s.login(t)); err != nil {
		t.Fatal(err)
	}

	before := s.counts()
	type proc struct {
		cmd *exec.Cmd
		out *bufio.Scanner
	}
	var ps []proc
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), workerEnv+"=1",
			"REFRESH_CONFORMANCE_DIR="+dir, "REFRESH_CONFORMANCE_BASE="+s.URL,
			"REFRESH_CONFORMANCE_ID="+strconv.Itoa(i), "REFRESH_CONFORMANCE_DURATION="+procDuration.String())
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe() // closed when the parent exits: the worker stops
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		ps = append(ps, proc{cmd, bufio.NewScanner(stdout)})
	}
	for i, p := range ps {
		if !p.out.Scan() || p.out.Text() != "ready" {
			t.Fatalf("worker %d did not start: %q", i, p.out.Text())
		}
	}

	var total report
	for i, p := range ps {
		var rep report
		if !p.out.Scan() {
			t.Fatalf("worker %d: no report", i)
		}
		if err := json.Unmarshal(p.out.Bytes(), &rep); err != nil {
			t.Fatalf("worker %d: report %q: %v", i, p.out.Text(), err)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
		if rep.Failures != 0 {
			t.Errorf("worker %d: %d of %d requests failed; first: %s", i, rep.Failures, rep.Requests, rep.FirstErr)
		}
		if rep.Requests == 0 {
			t.Errorf("worker %d made no requests", i)
		}
		total.Requests += rep.Requests
		total.Failures += rep.Failures
	}
	d := s.counts().sub(before)
	lo, hi := refreshBounds(procDuration, procLifespan, d.ExpiresIn)
	t.Logf("%d processes × %d goroutines (%v, %v access tokens): %s; refresh grants by process %v, expires_in seen %v, refreshes expected %d..%d",
		procs, procGoroutines, procDuration, procLifespan, d.summary(total.Requests, total.Failures), d.ByEngine, d.ExpiresIn, lo, hi)

	expectClean(t, d)
	// Workers start a little after the token was issued and run for
	// procDuration each, so the first refresh may come early: lo - 1.
	if d.Refreshes < lo-1 || d.Refreshes > hi {
		t.Errorf("refreshes = %d, want %d..%d for %v of %v tokens", d.Refreshes, lo-1, hi, procDuration, procLifespan)
	}
	if total.Requests < procs*100 {
		t.Errorf("only %d requests: the run proved little", total.Requests)
	}
}
