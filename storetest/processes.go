package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/procs"
)

// A Namespace is where the shared backend of one [RunProcesses] scenario
// lives. The parent makes a new one for each scenario and hands the same
// values to newStore in every process of it.
type Namespace struct {
	// Name is unique to the scenario's run: "procs_" and 12 hex digits,
	// only [a-z0-9_] and starting with a letter, so that it can serve as
	// a key prefix, a table or a schema name as it is.
	Name string
	// Dir is an empty directory the parent created for the scenario, for
	// stores that keep their files there. It is removed when the
	// scenario ends.
	Dir string
}

// ProcessOptions describe the store to [RunProcesses]. The zero value
// describes a store whose lock is held for as long as its holder's process
// lives, stopped or not (a kernel file lock, a database session), and runs
// the storm with 8 processes of 8 goroutines.
type ProcessOptions struct {
	// Lease is the length of the store's lock lease, for a store whose
	// lock expires by itself when its holder stops renewing it (a Redis
	// key with a TTL): a holder stopped for longer loses the lock. Give
	// newStore a short lease (a second or two) so that the scenarios do
	// not wait long. Zero means the lock is held for as long as the
	// holder's process lives, even stopped. It selects the scenarios;
	// nothing is timed by it.
	Lease time.Duration

	// BreakLock, if set, ends the lock that a stopped holder keeps, as the
	// backend may do by itself (a database ending an idle session), and
	// returns once the lock is free. It runs in the parent while the
	// holder is stopped, with the scenario's Namespace. Optional.
	BreakLock func(t *testing.T, ns Namespace)

	// ReportsLeaseLost says that the store reports a lost lease with
	// refresh.ReportStoreEvent (What "lease lost", from Lock's renewal or
	// from unlock), as redisstore and refresh.LeaseLocker do: the holder
	// stopped past its lease must then report it exactly once, and no
	// other process ever.
	ReportsLeaseLost bool

	// Processes and Goroutines size the storm. Optional: zero means 8
	// processes of 8 goroutines each.
	Processes, Goroutines int
}

// RunProcesses proves with real OS processes that a store shares one
// rotating refresh token between processes: it runs the scenarios below as
// subtests (go test -run 'TestMyStore/Storm' runs one), each with worker
// processes that each run a refresh.Engine over a store that newStore
// makes, against a strict authorization server (refreshtest: single-use
// refresh tokens, a reuse revokes the whole token family, only the newest
// access token is accepted) run by the parent, which counts every refresh,
// rotation and reuse on the server's side:
//
//   - Storm: Processes × Goroutines share the token through four events,
//     each of which must cost exactly one refresh among all the processes:
//     the stored token has expired when they start; its successor says it
//     lives six seconds, so it is refreshed while in use; then the API
//     refuses the newest access token twice (a storm of 401s). The next
//     event comes only once every goroutine has been served with the
//     token the last one brought. No request may fail, no reuse, four
//     rotations, one per token request; the store holds the server's
//     newest token.
//   - ClientCredentials: Processes × Goroutines share one key whose
//     tokens come from the client credentials grant and live 2 s, for
//     8 s: the token endpoint sees at most one request per half lifetime
//     among all the processes (plus one at the start and one in flight at
//     the end), every request a grant, and no request fails. The same
//     processes with golang.org/x/oauth2's clientcredentials are logged
//     for comparison.
//   - KilledWhileRefreshing: of three processes, the lock holder is
//     killed (SIGKILL) while its token request is at the server, which
//     never acts on it. The others get the lock and go on: one rotation,
//     no reuse, no ErrReauthRequired.
//   - KilledBeforeSave: the holder is killed after the server rotated the
//     token and before it saved the new one. That loss no store can
//     prevent: the others present the spent refresh token (a reuse, which
//     revokes the family) and get ErrReauthRequired, once each, without a
//     loop; the store still holds the token of before.
//   - FrozenHolder (Lease zero): the holder is stopped (SIGSTOP) between
//     the server's answer and its save; the others wait for the lock and
//     call the server not once. Continued (SIGCONT), it saves, the others
//     adopt its token, and nothing is lost.
//   - FrozenPastLease (Lease or BreakLock set): the holder is stopped
//     there until its lock is gone (its lease ran out, or BreakLock ended
//     it); another process refreshes and saves. Continued, the stopped
//     one's save must be refused (refresh.ErrConflict: its
//     CompareAndSwap compares), the newer token stays, and the stopped
//     one adopts it: none of its requests fail, and the API never sees
//     the token whose save was refused. The server keeps the refresh
//     token here: with rotation, the stopped holder's refresh spent it,
//     and the next refresh is a reuse whatever the store does.
//   - FrozenPastLeaseRotating (idem): the same with the strict server,
//     where the stopped holder's refresh spent the refresh token the store
//     still holds. That loss no store can prevent either: the others'
//     refresh is a reuse that revokes the family, and every process is
//     told to log in again, without a loop.
//
// Each scenario also checks that the lock is free once the workers have
// exited (and, if the store is a refresh.TryLocker, the frozen ones check
// that TryLock finds the stopped holder's lock held), and accounts for
// every reuse the server saw: a reuse of the refresh token whose successor
// a holder never saved, because the kit killed it, or stopped it past its
// lock, between the server's answer and its save, is a loss no store can
// prevent, reported with t.Log; any other reuse means that two processes
// spent one refresh token, and fails the scenario. A store that is not a
// refresh.Locker fails at once: without a lock across processes, they
// cannot share a rotating refresh token.
//
// The workers are the test binary itself, started with -test.run set to
// exactly the calling test and an environment variable that makes
// RunProcesses, called again there, run the worker and exit: no TestMain
// is needed, but the test must call RunProcesses before it does anything
// that should not run in every worker, and only once. newStore runs in the
// parent (once per scenario, with the scenario's subtest) and in every
// worker (with the calling test), with the scenario's Namespace: it must
// open the same backend each time, creating it if it is missing. What it
// registers with t.Cleanup runs in the parent only, when the scenario ends
// (workers exit without running cleanups): remove the backend there.
//
// RunProcesses is skipped with -short, and on platforms without SIGSTOP.
// It takes 10 to 30 seconds on a small machine; it judges by counts,
// never by how long anything took.
func RunProcesses(t *testing.T, newStore func(t *testing.T, ns Namespace) refresh.TokenStore, opts ProcessOptions) {
	t.Helper()
	if spec, ok := procs.FromEnv(); ok {
		store := newStore(t, Namespace{Name: spec.Name, Dir: spec.Dir})
		os.Exit(procs.Work(spec, store))
	}
	if !procs.Supported {
		t.Skip("RunProcesses needs SIGSTOP and SIGCONT")
	}
	if testing.Short() {
		t.Skip("RunProcesses starts OS processes")
	}
	if opts.Processes <= 0 {
		opts.Processes = 8
	}
	if opts.Goroutines <= 0 {
		opts.Goroutines = 8
	}
	k := &kit{test: t.Name(), newStore: newStore, opts: opts}
	for _, sc := range k.scenarios() {
		t.Run(sc.name, func(t *testing.T) { sc.run(t, k) })
	}
}

// kit is one call of RunProcesses, in the parent.
type kit struct {
	test     string // the calling test's name, for the workers' -test.run
	newStore func(t *testing.T, ns Namespace) refresh.TokenStore
	opts     ProcessOptions
}

type scenario struct {
	name string
	run  func(t *testing.T, k *kit)
}

// scenarios are the scenarios that apply to the store.
func (k *kit) scenarios() []scenario {
	s := []scenario{
		{"Storm", storm},
		{"ClientCredentials", clientCredentials},
		{"KilledWhileRefreshing", killedWhileRefreshing},
		{"KilledBeforeSave", killedBeforeSave},
	}
	if k.opts.Lease == 0 {
		s = append(s, scenario{"FrozenHolder", frozenHolder})
	}
	if k.opts.Lease > 0 || k.opts.BreakLock != nil {
		s = append(s, scenario{"FrozenPastLease", frozenPastLease}, scenario{"FrozenPastLeaseRotating", frozenPastLeaseRotating})
	}
	return s
}

// newNamespace makes the Namespace of one scenario.
func newNamespace(t *testing.T) Namespace {
	b := make([]byte, 6)
	rand.Read(b)
	return Namespace{Name: "procs_" + hex.EncodeToString(b), Dir: t.TempDir()}
}
