package procs

import (
	"fmt"
	"io"
	"testing"
	"time"
)

// Await waits until cond holds, failing the test if one of ps ends
// without a report meanwhile, or if Watchdog passes first: what says what
// was awaited.
func Await(t testing.TB, what string, cond func() bool, ps ...*Proc) {
	t.Helper()
	deadline := time.Now().Add(Watchdog)
	for !cond() {
		for _, p := range ps {
			p.mu.Lock()
			f := p.failure()
			p.mu.Unlock()
			if f != "" {
				t.Fatalf("%s: %s", what, f)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, Watchdog)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// StartAll starts a worker for each spec, and waits until each is ready.
func StartAll(t testing.TB, test string, specs ...Spec) []*Proc {
	t.Helper()
	var ps []*Proc
	for _, s := range specs {
		ps = append(ps, Start(t, test, s))
	}
	Await(t, "workers starting", func() bool {
		for _, p := range ps {
			if !p.State().Ready {
				return false
			}
		}
		return true
	}, ps...)
	return ps
}

// First waits until one of ps satisfies cond, and returns it.
func First(t testing.TB, what string, cond func(State) bool, ps ...*Proc) *Proc {
	t.Helper()
	var found *Proc
	Await(t, what, func() bool {
		for _, p := range ps {
			if cond(p.State()) {
				found = p
				return true
			}
		}
		return false
	}, ps...)
	return found
}

// Kill ends the worker with SIGKILL and waits for it to exit.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing worker %s: %v", p.ID, err)
	}
	p.cmd.Wait()
}

// Freeze stops the worker with SIGSTOP; Thaw continues it with SIGCONT.
func (p *Proc) Freeze(t testing.TB) {
	t.Helper()
	if err := freeze(p.cmd.Process); err != nil {
		t.Fatalf("stopping worker %s: %v", p.ID, err)
	}
}

// Thaw continues a worker stopped by Freeze.
func (p *Proc) Thaw(t testing.TB) {
	t.Helper()
	if err := thaw(p.cmd.Process); err != nil {
		t.Fatalf("continuing worker %s: %v", p.ID, err)
	}
}

// Resume lets the worker's paused save go on.
func (p *Proc) Resume(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "resume\n"); err != nil {
		t.Fatalf("resuming worker %s: %v", p.ID, err)
	}
}

// Finish stops the workers' requests together (a race-enabled binary
// lingers a moment at its exit), and returns their reports, in order. A
// worker that exits with an error (a data race, say) fails the test.
func Finish(t testing.TB, ps ...*Proc) []Report {
	t.Helper()
	for _, p := range ps {
		p.stdin.Close()
	}
	return Wait(t, ps...)
}

// Wait waits for the workers to report and exit by themselves (when their
// Spec.Duration ends), and returns their reports, in order.
func Wait(t testing.TB, ps ...*Proc) []Report {
	t.Helper()
	var reps []Report
	for _, p := range ps {
		Await(t, fmt.Sprintf("the report of worker %s", p.ID), func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.report != nil
		}, p)
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("worker %s: %v", p.ID, err)
		}
		p.mu.Lock()
		reps = append(reps, *p.report)
		p.mu.Unlock()
	}
	return reps
}
