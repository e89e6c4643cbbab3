package refresh

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/oauthkit/refresh/refreshtest"
)

// engineGoroutines returns the stacks of the goroutines now running code
// of this package (not of its tests), by goroutine id.
func engineGoroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	ours := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		if inPackage(g) {
			id, _, _ := strings.Cut(g, " [")
			ours[id] = g
		}
	}
	return ours
}

// inPackage reports whether the goroutine of stack runs code of this
// package: a function of package refresh whose file is not a test's.
func inPackage(stack string) bool {
	lines := strings.Split(stack, "\n")
	for i := 0; i+1 < len(lines); i++ {
		if strings.HasPrefix(lines[i], "github.com/oauthkit/refresh.") && !strings.Contains(lines[i+1], "_test.go:") {
			return true
		}
	}
	return false
}

// runningSince returns the goroutines of this package's code that run now
// and did not in before.
func runningSince(before map[string]string) []string {
	var extra []string
	for id, stack := range engineGoroutines() {
		if _, ok := before[id]; !ok {
			extra = append(extra, stack)
		}
	}
	return extra
}

// newGoroutines waits up to a few seconds until runningSince(before) is
// empty, and returns what remains.
func newGoroutines(before map[string]string) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runningSince(before)
		if len(extra) == 0 || time.Now().After(deadline) {
			return extra
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCloseLeavesNothingRunning: an engine that did everything that starts
// background work (a save that keeps failing and is retried, events for a
// slow OnEvent, the idle sweep, a schedule of refresh times) has nothing of
// it running after Close, which reports the token it could not save.
func TestCloseLeavesNothingRunning(t *testing.T) {
	before := engineGoroutines()
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	store := new(fakeStore)
	slow := make(chan struct{})
	e, _ := New(Config{Endpoint: memEndpoint(srv), Store: store, IdleTimeout: time.Minute,
		OnEvent: func(Event) { <-slow }})
	usersWithPendingSave(t, e, store, srv, 100)
	if len(runningSince(before)) == 0 {
		t.Fatal("no background work running before Close: the test tests nothing")
	}
	close(slow)
	if err := e.Close(t.Context()); !errors.Is(err, ErrNotSaved) {
		t.Errorf("Close with a save pending = %v, want ErrNotSaved", err)
	}
	for _, g := range newGoroutines(before) {
		t.Errorf("still running after Close:\n%s", g)
	}
	if n := e.sched.len(); n != 0 {
		t.Errorf("refreshes still scheduled after Close = %d", n)
	}
}

// TestDroppedEnginesCollected: 1,000 engines used and dropped without
// Close, with nothing in flight and no save pending, are collected, and so
// are their keys' tokens, once their refresh timeouts have passed: no timer
// or goroutine keeps them, as one runtime timer per key used to keep each
// token until its refresh time. (The runtime drops a stopped timer, such as
// a refresh's context.WithTimeout, from its heap only when the timer would
// have fired.)
func TestDroppedEnginesCollected(t *testing.T) {
	srv := newServer(t, refreshtest.Options{Lifetime: time.Hour})
	var engines []weak.Pointer[Engine]
	var snapshots []weak.Pointer[snapshot]
	for i := range 1000 {
		c := Config{Endpoint: memEndpoint(srv), OnEvent: func(Event) {}, RefreshTimeout: 500 * time.Millisecond}
		if i%2 == 0 {
			c.Store, c.IdleTimeout = new(MemoryStore), time.Minute
		}
		e, _ := New(c)
		for k := range 3 {
			key := fmt.Sprintf("user-%d", k)
			if err := e.SetToken(context.Background(), key, srv.Token()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Token(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			snapshots = append(snapshots, weak.Make(e.lookup(key).cur.Load()))
		}
		if _, err := e.Refresh(context.Background(), "user-0", nil); err != nil { // an event, a flight
			t.Fatal(err)
		}
		FlushEvents(e)
		engines = append(engines, weak.Make(e))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		live := 0
		for _, w := range engines {
			if w.Value() != nil {
				live++
			}
		}
		for _, w := range snapshots {
			if w.Value() != nil {
				live++
			}
		}
		if live == 0 {
			return
		}
		if time.Now().After(deadline) {
			le, odd := 0, 0
			for i, w := range engines {
				if w.Value() != nil {
					le++
					if i%2 == 1 {
						odd++
					}
				}
			}
			t.Fatalf("%d of %d dropped engines and their snapshots still live after 10 s (engines: %d, %d with the own store)", live, len(engines)+len(snapshots), le, odd)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
