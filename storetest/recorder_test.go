package storetest

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
)

// testOptions are short, so that the checks that wait for a hanging store
// give up quickly.
var testOptions = options{
	watchdog: time.Second,
	slow:     20 * time.Second,
	lockWait: 50 * time.Millisecond,
}

// recorder is a tb that records failures instead of failing the test.
type recorder struct {
	name string
	mu   sync.Mutex // protects msgs
	msgs []string
}

func (r *recorder) Helper()      {}
func (r *recorder) Name() string { return r.name }

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

// Fatalf ends the check like testing.T.Fatalf does: checks call it only
// from the goroutine runCheck starts.
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// runCheck runs the check called name ("NotFound", "Lock/Exclusion",
// "CAS/Race"...) on s and returns the failures it reported.
func runCheck(t *testing.T, name string, s refresh.TokenStore) []string {
	t.Helper()
	r := &recorder{name: t.Name() + "/" + name}
	var run func()
	group, check, grouped := strings.Cut(name, "/")
	switch {
	case !grouped:
		c := findCheck(t, storeChecks, name)
		run = func() { c.run(r, s, testOptions) }
	case group == "Lock":
		l, ok := s.(refresh.Locker)
		if !ok {
			t.Fatalf("%T does not implement refresh.Locker", s)
		}
		c := findCheck(t, lockChecks, check)
		run = func() { c.run(r, l, testOptions) }
	case group == "TryLock":
		l, ok := s.(refresh.TryLocker)
		if !ok {
			t.Fatalf("%T does not implement refresh.TryLocker", s)
		}
		c := findCheck(t, tryLockChecks, check)
		run = func() { c.run(r, l, testOptions) }
	case group == "CAS":
		cs, ok := s.(refresh.CompareAndSwapper)
		if !ok {
			t.Fatalf("%T does not implement refresh.CompareAndSwapper", s)
		}
		c := findCheck(t, casChecks, check)
		run = func() { c.run(r, cs, testOptions) }
	case group == "Delete" && hasCheck(deleteCASChecks, check):
		d, ok := s.(deleteCASer)
		if !ok {
			t.Fatalf("%T does not implement refresh.Deleter and refresh.CompareAndSwapper", s)
		}
		c := findCheck(t, deleteCASChecks, check)
		run = func() { c.run(r, d, testOptions) }
	case group == "Delete":
		d, ok := s.(refresh.Deleter)
		if !ok {
			t.Fatalf("%T does not implement refresh.Deleter", s)
		}
		c := findCheck(t, deleteChecks, check)
		run = func() { c.run(r, d, testOptions) }
	default:
		t.Fatalf("no check group %q", group)
	}
	if !within(time.Minute, run) {
		t.Fatalf("check %s did not return within a minute", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.msgs
}

func hasCheck[S refresh.TokenStore](checks []check[S], name string) bool {
	for _, c := range checks {
		if c.name == name {
			return true
		}
	}
	return false
}

func findCheck[S refresh.TokenStore](t *testing.T, checks []check[S], name string) check[S] {
	t.Helper()
	for _, c := range checks {
		if c.name == name {
			return c
		}
	}
	t.Fatalf("no check %q", name)
	panic("unreachable")
}

// allChecks are the names of every check, as runCheck takes them.
func allChecks() []string {
	var names []string
	for _, c := range storeChecks {
		names = append(names, c.name)
	}
	for _, c := range lockChecks {
		names = append(names, "Lock/"+c.name)
	}
	for _, c := range tryLockChecks {
		names = append(names, "TryLock/"+c.name)
	}
	for _, c := range casChecks {
		names = append(names, "CAS/"+c.name)
	}
	for _, c := range deleteChecks {
		names = append(names, "Delete/"+c.name)
	}
	for _, c := range deleteCASChecks {
		names = append(names, "Delete/"+c.name)
	}
	return names
}
