package procs

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

func TestRunPattern(t *testing.T) {
	name := "TestX/a.b(c)+/[d]"
	parts := strings.Split(RunPattern(name), "/")
	want := strings.Split(name, "/")
	if len(parts) != len(want) {
		t.Fatalf("RunPattern(%q) = %q: %d parts, want %d", name, RunPattern(name), len(parts), len(want))
	}
	for i, p := range parts {
		re := regexp.MustCompile(p)
		if !re.MatchString(want[i]) {
			t.Errorf("part %q does not match %q", p, want[i])
		}
		for _, other := range []string{want[i] + "x", "x" + want[i], strings.ReplaceAll(want[i], ".", "z")} {
			if other != want[i] && re.MatchString(other) {
				t.Errorf("part %q matches %q too", p, other)
			}
		}
	}
}

// lockStore is a refresh.Locker over a MemoryStore, with a lock that
// excludes nothing.
type lockStore struct{ *refresh.MemoryStore }

func (lockStore) Lock(context.Context, string) (func(), error) { return func() {}, nil }

type tryStore struct{ lockStore }

func (tryStore) TryLock(context.Context, string) (func(), bool, error) { return func() {}, true, nil }

// saveOnly hides the MemoryStore's CompareAndSwap.
type saveOnly struct{ refresh.TokenStore }

type saveOnlyLock struct{ saveOnly }

func (saveOnlyLock) Lock(context.Context, string) (func(), error) { return func() {}, nil }

type saveOnlyTry struct{ saveOnlyLock }

func (saveOnlyTry) TryLock(context.Context, string) (func(), bool, error) {
	return func() {}, true, nil
}

func TestWrapKeepsCapabilities(t *testing.T) {
	mem := func() *refresh.MemoryStore { return new(refresh.MemoryStore) }
	for _, l := range []refresh.Locker{
		lockStore{mem()}, tryStore{lockStore{mem()}},
		saveOnlyLock{saveOnly{mem()}}, saveOnlyTry{saveOnlyLock{saveOnly{mem()}}},
	} {
		w := newPauser(l, false, &out{w: new(bytes.Buffer)}).wrap()
		_, cas := l.(refresh.CompareAndSwapper)
		_, try := l.(refresh.TryLocker)
		_, wcas := w.(refresh.CompareAndSwapper)
		_, wtry := w.(refresh.TryLocker)
		if cas != wcas || try != wtry {
			t.Errorf("%T wrapped: CompareAndSwapper %v, TryLocker %v; want %v and %v", l, wcas, wtry, cas, try)
		}
	}
}

func TestPauserPausesFirstSave(t *testing.T) {
	var buf bytes.Buffer
	o := &out{w: &buf}
	p := newPauser(lockStore{new(refresh.MemoryStore)}, true, o)
	c := p.wrap().(refresh.CompareAndSwapper)
	ctx := context.Background()
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	done := make(chan error, 1)
	go func() { done <- c.CompareAndSwap(ctx, "k", &oauth2.Token{AccessToken: "x"}, tok) }()
	select {
	case err := <-done:
		t.Fatalf("the first CompareAndSwap returned before release: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	p.release()
	if err := <-done; err == nil || p.outcome() != "conflict" || !p.done() {
		t.Errorf("paused CompareAndSwap: %v, outcome %q, done %v; want a conflict", err, p.outcome(), p.done())
	}
	if err := c.CompareAndSwap(ctx, "k", nil, tok); err != nil {
		t.Errorf("the second CompareAndSwap: %v", err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if got, want := buf.String(), "procs paused\nprocs saved conflict\n"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

func TestParse(t *testing.T) {
	p := &Proc{ID: "w1", served: map[string]string{}}
	for _, line := range []string{
		"=== RUN TestX", prefix + "ready", prefix + "locking", prefix + "served 0 aa", prefix + "served 1 aa",
		prefix + "paused", prefix + "saved error: store down", prefix + "reauth",
		prefix + `report {"requests":3,"failures":1,"served":{"aa":2}}`,
	} {
		p.parse(line)
	}
	want := State{Ready: true, Paused: true, Reauth: true, Saved: "error: store down", Waiting: true}
	if got := p.State(); got != want {
		t.Errorf("state %+v, want %+v", got, want)
	}
	if n := p.ServedWith("aa"); n != 2 {
		t.Errorf("ServedWith = %d, want 2", n)
	}
	if p.report == nil || p.report.Requests != 3 || p.report.Served["aa"] != 2 {
		t.Errorf("report %+v", p.report)
	}
	p.ended = true
	if f := p.failure(); f != "" {
		t.Errorf("a worker that reported: failure %q", f)
	}
	p.report = nil
	if f := p.failure(); !strings.Contains(f, fmt.Sprintf("%q", []string{"=== RUN TestX"})) {
		t.Errorf("failure %q does not quote the worker's other output", f)
	}
}
