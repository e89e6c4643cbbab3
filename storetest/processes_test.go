//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package storetest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/storetest"
)

// testLease is the lease of leaseStore's lock.
const testLease = time.Second

// TestRunProcessesLease runs the kit on a store whose lock is a lease, so
// that FrozenPastLease runs in this module too: a correct store passes.
func TestRunProcessesLease(t *testing.T) {
	storetest.RunProcesses(t, func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
		return newLeaseStore(t, ns.Dir, false)
	}, storetest.ProcessOptions{Lease: testLease, Processes: 4, Goroutines: 4})
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
			return &localLock{Store: s}
		case "blind-cas":
			return newLeaseStore(t, ns.Dir, true)
		}
		t.Fatalf("no broken store %q", kind)
		return nil
	}
	storetest.RunProcesses(t, newStore, storetest.ProcessOptions{Lease: testLease, Processes: 4, Goroutines: 4})
}

// localLock is a filestore whose lock excludes only the goroutines of one
// process.
type localLock struct {
	*filestore.Store
	mu sync.Mutex
}

func (l *localLock) Lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	return l.mu.Unlock, nil
}

// leaseStore is a filestore with a lock that is a lease: a file that names
// its holder and the end of its lease, renewed every quarter of the lease
// while held, changed only under a guard flock held for a moment. A
// stopped holder keeps the lock until its lease ends. With blind set,
// CompareAndSwap does not compare.
type leaseStore struct {
	*filestore.Store
	dir   string
	blind bool
}

func newLeaseStore(t *testing.T, dir string, blind bool) *leaseStore {
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &leaseStore{Store: s, dir: dir, blind: blind}
}

func (s *leaseStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if s.blind {
		return s.Save(ctx, key, new)
	}
	return s.Store.CompareAndSwap(ctx, key, old, new)
}

func (s *leaseStore) Lock(ctx context.Context, key string) (func(), error) {
	b := make([]byte, 8)
	rand.Read(b)
	owner := hex.EncodeToString(b)
	for {
		ok, err := s.take(owner)
		if err != nil {
			return nil, err
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lease lock: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop := make(chan struct{})
	go s.renew(owner, stop)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(stop)
			s.guarded(func(held string, _ time.Time) (string, error) {
				if held == owner {
					return "", os.Remove(s.lease())
				}
				return "", nil
			})
		})
	}, nil
}

// take takes the lease for owner if it is free or has ended.
func (s *leaseStore) take(owner string) (bool, error) {
	var ok bool
	err := s.guarded(func(held string, until time.Time) (string, error) {
		if held != "" && time.Now().Before(until) {
			return "", nil
		}
		ok = true
		return owner, nil
	})
	return ok, err
}

// renew extends owner's lease until stop is closed or the lease is lost.
func (s *leaseStore) renew(owner string, stop <-chan struct{}) {
	tick := time.NewTicker(testLease / 4)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		lost := false
		s.guarded(func(held string, _ time.Time) (string, error) {
			lost = held != owner
			if lost {
				return "", nil
			}
			return owner, nil
		})
		if lost {
			return
		}
	}
}

func (s *leaseStore) lease() string { return filepath.Join(s.dir, "lease") }

// guarded runs f under the guard with the lease's holder and end ("" if
// none); if f returns an owner, the lease is written for it, from now.
func (s *leaseStore) guarded(f func(held string, until time.Time) (string, error)) error {
	g, err := os.OpenFile(filepath.Join(s.dir, "lease.guard"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer g.Close()
	if err := syscall.Flock(int(g.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	var held string
	var until time.Time
	if b, err := os.ReadFile(s.lease()); err == nil {
		h, ns, _ := strings.Cut(string(b), " ")
		n, _ := strconv.ParseInt(ns, 10, 64)
		held, until = h, time.Unix(0, n)
	}
	owner, err := f(held, until)
	if err != nil || owner == "" {
		return err
	}
	return os.WriteFile(s.lease(), fmt.Appendf(nil, "%s %d", owner, time.Now().Add(testLease).UnixNano()), 0o600)
}
