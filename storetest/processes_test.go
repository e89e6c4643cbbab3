//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package storetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/storetest"
)

// testLease is the lease of the refresh.LeaseLocker the tests use.
const testLease = 2 * time.Second

// TestRunProcessesLease runs the kit on a filestore with a
// refresh.LeaseLocker's lock, whose lease ends when its holder stops:
// FrozenPastLease runs in this module too, and LeaseLocker is proven with
// real processes.
func TestRunProcessesLease(t *testing.T) {
	storetest.RunProcesses(t, func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
		return newLeaseStore(t, ns.Dir, false)
	}, storetest.ProcessOptions{Lease: testLease, ReportsLeaseLost: true, Processes: 4, Goroutines: 4})
}

// brokenEnv makes TestRunProcessesFails, run again, run the kit on the
// broken store it names.
const brokenEnv = "STORETEST_BROKEN_STORE"

// TestRunProcessesFails checks that the kit fails a store that breaks its
// part: each case runs this test again, in a process of its own, running
// the kit's scenario on a broken store, and expects it to fail saying why.
func TestRunProcessesFails(t *testing.T) {
	if kind := os.Getenv(brokenEnv); kind != "" {
		runBroken(t, kind)
		return
	}
	if testing.Short() {
		t.Skip("starts OS processes")
	}
	cases := []struct{ kind, scenario, want string }{
		// Each process locks only its own goroutines out.
		{"local-lock", "Storm", "two processes spent one refresh token"},
		// CompareAndSwap that saves whatever the store holds.
		{"blind-cas", "FrozenPastLease", "want a refusal wrapping refresh.ErrConflict"},
	}
	for _, c := range cases {
		scenario := t.Name() + "/" + c.scenario
		t.Run(c.kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run="+procs.RunPattern(scenario))
			cmd.Env = append(os.Environ(), brokenEnv+"="+c.kind)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the kit on a store with a %s: %v, want a failure; output:\n%s", c.kind, err, out)
			}
			if !strings.Contains(string(out), "--- FAIL: "+scenario) ||
				!strings.Contains(string(out), c.want) {
				t.Errorf("the kit on a store with a %s: want %s to fail with %q; output:\n%s", c.kind, c.scenario, c.want, out)
			}
		})
	}
}

// runBroken runs the kit on the broken store kind.
func runBroken(t *testing.T, kind string) {
	newStore := func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
		switch kind {
		case "local-lock":
			s, err := filestore.New(ns.Dir)
			if err != nil {
				t.Fatal(err)
			}
			return &localLock{CompareAndSwapper: s}
		case "blind-cas":
			return newLeaseStore(t, ns.Dir, true)
		}
		t.Fatalf("no broken store %q", kind)
		return nil
	}
	storetest.RunProcesses(t, newStore, storetest.ProcessOptions{Lease: testLease, Processes: 4, Goroutines: 4})
}

// localLock is a store whose lock excludes only the goroutines of one
// process. (It embeds the interface, so that no other method of the
// filestore, such as its TryLock, is promoted.)
type localLock struct {
	refresh.CompareAndSwapper
	mu sync.Mutex
}

func (l *localLock) Lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	return l.mu.Unlock, nil
}

// newLeaseStore is a filestore in dir with a refresh.LeaseLocker's lease
// lock, whose CompareAndSwap does not compare if blind is set.
func newLeaseStore(t *testing.T, dir string, blind bool) refresh.TokenStore {
	fs, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := refresh.NewLeaseLocker(fs, refresh.LeaseOptions{TTL: testLease})
	if err != nil {
		t.Fatal(err)
	}
	if blind {
		return blindCAS{l}
	}
	return l
}

// blindCAS saves whatever the store holds.
type blindCAS struct{ *refresh.LeaseLocker }

func (b blindCAS) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	return b.Save(ctx, key, new)
}
