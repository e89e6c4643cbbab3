package conformance_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/internal/procs"
)

// Scenario 4: OS processes sharing a filestore directory.
const (
	processes      = 5
	procGoroutines = 4
	procDuration   = 9 * time.Second
	procLifespan   = 2 * time.Second
	procPace       = 5 * time.Millisecond
)

// TestProcesses (scenario 4): 5 processes × 4 goroutines, each process with
// its own engine over one filestore directory, share one fosite grant with
// 2 s access tokens for 9 s: every request succeeds, fosite sees no reuse
// and no error, and each refresh is one rotation. The processes are the
// workers of internal/procs (the machinery of storetest.RunProcesses), run
// here against fosite rather than refreshtest.
func TestProcesses(t *testing.T) {
	if spec, ok := procs.FromEnv(); ok {
		store, err := filestore.New(spec.Dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(procs.Work(spec, store))
	}
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
	var specs []procs.Spec
	for i := range processes {
		specs = append(specs, procs.Spec{
			ID: fmt.Sprintf("proc-%d", i), Dir: dir, Header: "X-Engine",
			TokenURL: s.URL + "/token", ClientID: clientID, ClientSecret: clientSecret, Auth: refresh.AuthBasic,
			APIURL: s.URL + "/api", Goroutines: procGoroutines, Pace: procPace, Duration: procDuration,
			Attempts: 3, // the engine's default
		})
	}
	ps := procs.StartAll(t, t.Name(), specs...)
	var total report
	for i, rep := range procs.Wait(t, ps...) {
		if rep.Failures != 0 || rep.Requests == 0 {
			t.Errorf("worker %s: %d of %d requests failed; first: %s", ps[i].ID, rep.Failures, rep.Requests, rep.FirstErr)
		}
		total.Requests += rep.Requests
		total.Failures += rep.Failures
	}
	d := s.counts().sub(before)
	lo, hi := refreshBounds(procDuration, procLifespan, d.ExpiresIn)
	t.Logf("%d processes × %d goroutines (%v, %v access tokens): %s; refresh grants by process %v, expires_in seen %v, refreshes expected %d..%d",
		processes, procGoroutines, procDuration, procLifespan, d.summary(total.Requests, total.Failures), d.ByEngine, d.ExpiresIn, lo, hi)

	expectClean(t, d)
	// Workers start a little after the token was issued and run for
	// procDuration each, so the first refresh may come early: lo - 1.
	if d.Refreshes < lo-1 || d.Refreshes > hi {
		t.Errorf("refreshes = %d, want %d..%d for %v of %v tokens", d.Refreshes, lo-1, hi, procDuration, procLifespan)
	}
	if total.Requests < processes*100 {
		t.Errorf("only %d requests: the run proved little", total.Requests)
	}
}
