package crossproc_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
)

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
