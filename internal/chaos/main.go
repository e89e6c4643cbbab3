// Command chaos is a soak test of github.com/oauthkit/refresh under faults:
// worker processes share one token store and one strict authorization
// server while the token endpoint fails, the store fails and panics, and
// workers are killed and frozen; at the end every lost token family is
// explained, or reported as a library fault.
//
//	cd internal/chaos && go run . -store file -duration 2m
//	go run . -store redis,postgres -duration 1m -v
//	go run . -store file -store-faults none          # kills, freezes and server faults only
//
// This process (the orchestrator) runs a refreshtest server: refresh tokens
// rotate on every refresh, presenting a spent one revokes the whole family
// (RFC 9700), access tokens live 2 s and each new one revokes the previous
// ones. Its token endpoint goes through phases of injected faults: 503 and
// 429 with Retry-After, HTML 502, connection resets before the request is
// handled and after it was (the server rotated, the client never learns
// it), and slow answers. It starts -workers copies of itself (worker
// processes), each sending requests from -goroutines goroutines through its
// own refresh.Engine over the shared store (a file store directory, a Redis
// prefix, or a PostgreSQL table, all created for the run and removed at its
// end), with storetest.Faults injecting errors, errors after the write,
// panics and delays into Load, Save, CompareAndSwap, Lock and unlock. It
// SIGKILLs workers at random and restarts them, and SIGSTOPs them for up to
// -max-freeze (longer than the Redis lock lease of -lease, sometimes); a
// share of them (-targeted) right after the worker took the store's lock,
// inside its critical section.
//
// The server reports every token request (refreshtest's OnTokenRequest):
// which worker received each rotation, which answers a fault dropped. The
// workers report what their store reads and writes, and their engine's
// warnings. When a family is lost the orchestrator logs the user in again
// (a new grant, saved in the store), as a user would, and the soak goes on.
// At the end each loss is explained (the answer was dropped; the worker
// that received it was killed before it reached the store; it and the
// worker that sent the old token held a Redis lock at once because one was
// frozen past its lease) or counted as a library fault, with the evidence
// and, where it fits, the known pattern; see ledger.go for the rules.
// -trace writes the whole timeline, which tells each story step by step.
//
// The exit status is 1 if any loss or reuse is not explained, a worker
// crashed (a panic that escaped the library: workers recover nothing), hung,
// or stopped working while the others did; 2 for a usage or setup error;
// 130 if interrupted. Randomness is seeded (-seed); timings are not, so two
// runs differ in detail. Nothing depends on how fast the machine is, only
// on counts and on the order of events.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	stores      []string
	duration    time.Duration
	workers     int
	goroutines  int
	pace        time.Duration
	seed        uint64
	lifetime    time.Duration
	oneAccess   bool
	storeKinds  map[string]bool
	storeRate   float64
	storeDelay  time.Duration
	serverKinds map[string]bool
	serverRate  float64
	killEvery   time.Duration
	freezeEvery time.Duration
	maxFreeze   time.Duration
	targeted    float64
	lease       time.Duration
	redisAddr   string
	postgresURL string
	race        bool
	verbose     bool
	trace       string
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func main() {
	if spec := os.Getenv(workerEnv); spec != "" {
		os.Exit(workerMain(spec)) // a worker process started by the orchestrator
	}
	var o options
	var stores, storeKinds, serverKinds string
	flag.StringVar(&stores, "store", "file", "the shared store: file, redis, postgres, or a comma-separated list run one after another")
	flag.DurationVar(&o.duration, "duration", 2*time.Minute, "how long each store is soaked")
	flag.IntVar(&o.workers, "workers", 4, "worker processes")
	flag.IntVar(&o.goroutines, "goroutines", 6, "goroutines sending requests in each worker")
	flag.DurationVar(&o.pace, "pace", 25*time.Millisecond, "pause of each goroutine between two requests")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of every random choice (faults, victims, delays)")
	flag.DurationVar(&o.lifetime, "lifetime", 2*time.Second, "access-token lifetime (whole seconds)")
	flag.BoolVar(&o.oneAccess, "one-access-token", true, "each new access token revokes the grant's previous ones (gw2.me), so every rotation sends every worker to the store")
	flag.StringVar(&storeKinds, "store-faults", "all", "store faults: comma-separated "+strings.Join(storeFaultKinds, ",")+", or all, or none")
	flag.Float64Var(&o.storeRate, "store-rate", 0.02, "probability of each store fault kind per store call (delays: 2.5×)")
	flag.DurationVar(&o.storeDelay, "store-delay", 300*time.Millisecond, "longest injected store delay")
	flag.StringVar(&serverKinds, "server-faults", "all", "token-endpoint fault phases: comma-separated "+strings.Join(serverFaultKinds, ",")+", or all, or none")
	flag.Float64Var(&o.serverRate, "server-rate", 0.25, "share of token requests failed during a fault phase")
	flag.DurationVar(&o.killEvery, "kill-every", 12*time.Second, "mean time between two SIGKILLs of a random worker; 0: none")
	flag.DurationVar(&o.freezeEvery, "freeze-every", 10*time.Second, "mean time between two SIGSTOPs of a random worker; 0: none")
	flag.DurationVar(&o.maxFreeze, "max-freeze", 4*time.Second, "longest SIGSTOP")
	flag.Float64Var(&o.targeted, "targeted", 0.5, "share of kills and freezes that wait for the worker to take the store's lock and hit it then")
	flag.DurationVar(&o.lease, "lease", 1500*time.Millisecond, "Redis lock lease (redisstore LockTTL), short so that a freeze can outlast it")
	flag.StringVar(&o.redisAddr, "redis", envOr("REFRESH_TEST_REDIS", "127.0.0.1:6379"), "Redis address")
	flag.StringVar(&o.postgresURL, "postgres", envOr("REFRESH_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL connection string")
	flag.BoolVar(&o.race, "race", false, "build the workers with the race detector (needs the go command; run from this module)")
	flag.BoolVar(&o.verbose, "v", false, "print events as they happen")
	flag.StringVar(&o.trace, "trace", "", "write the whole timeline (every token request, store read and write, lock, engine warning, kill, freeze) to this file, with several stores to FILE.<store>, and the stderr of each crashed or hung worker next to it")
	flag.Parse()

	usage := func(msg string) {
		fmt.Fprintln(os.Stderr, "chaos:", msg)
		os.Exit(2)
	}
	var err error
	if o.storeKinds, err = parseKinds("store-faults", storeKinds, storeFaultKinds); err != nil {
		usage(err.Error())
	}
	if o.serverKinds, err = parseKinds("server-faults", serverKinds, serverFaultKinds); err != nil {
		usage(err.Error())
	}
	for _, s := range strings.Split(stores, ",") {
		o.stores = append(o.stores, strings.TrimSpace(s))
	}
	switch {
	case flag.NArg() > 0:
		usage("unexpected arguments " + strings.Join(flag.Args(), " "))
	case o.duration <= 0 || o.workers < 2 || o.goroutines < 1 || o.pace < 0:
		usage("need -duration > 0, -workers >= 2, -goroutines >= 1, -pace >= 0")
	case o.lifetime < time.Second || o.lifetime%time.Second != 0:
		usage("-lifetime must be whole seconds, at least 1s")
	case !(o.storeRate >= 0 && o.storeRate <= 0.2) || !(o.serverRate >= 0 && o.serverRate <= 1):
		usage("need 0 <= -store-rate <= 0.2 and 0 <= -server-rate <= 1")
	case o.killEvery < 0 || o.freezeEvery < 0 || o.maxFreeze < 300*time.Millisecond || o.lease < 100*time.Millisecond ||
		!(o.targeted >= 0 && o.targeted <= 1):
		usage("need -kill-every, -freeze-every >= 0, -max-freeze >= 300ms, -lease >= 100ms, 0 <= -targeted <= 1")
	}
	os.Exit(run(o))
}

// run soaks each store in turn and returns the exit status.
func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-aborted:
			cancel()
		case <-ctx.Done():
		}
		stop() // a second Ctrl-C ends the process at once
	}()
	exe, cleanup, err := workerBinary(ctx, o.race)
	defer cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 2
	}
	status := 0
	for _, kind := range o.stores {
		st := soak(ctx, o, kind, exe)
		status = max(status, st)
		if ctx.Err() != nil {
			break
		}
	}
	select {
	case <-aborted:
		fmt.Fprintln(os.Stderr, "chaos: internal error, soak abandoned:", abortMsg)
		return 2
	default:
	}
	if ctx.Err() != nil {
		return 130
	}
	return status
}

// A panic in the orchestrator (a bug of the soak, not of the library)
// must not skip the cleanup: guarded goroutines report it here, and the
// soak stops as if interrupted.
var (
	aborted   = make(chan struct{})
	abortOnce sync.Once
	abortMsg  string
)

// guarded returns f, made to turn a panic into an abort of the soak.
func guarded(f func()) func() {
	return func() {
		defer func() {
			if r := recover(); r != nil {
				abortOnce.Do(func() {
					abortMsg = fmt.Sprintf("%v\n%s", r, debug.Stack())
					close(aborted)
				})
			}
		}()
		f()
	}
}

// workerBinary returns the program to start as workers: this one, or a
// build of it with the race detector.
func workerBinary(ctx context.Context, race bool) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", func() {}, fmt.Errorf("cannot find this program to start workers: %w", err)
	}
	if !race || raceEnabled {
		return exe, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "refresh-chaos-bin-")
	if err != nil {
		return "", func() {}, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "chaos-race")
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/oauthkit/refresh/internal/chaos")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", cleanup, fmt.Errorf("building the workers with -race (run from internal/chaos): %w", err)
	}
	fmt.Fprintf(os.Stderr, "chaos: built the race-enabled workers in %v\n", time.Since(start).Round(100*time.Millisecond))
	return bin, cleanup, nil
}

func writeFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// watchdogSlack is how much longer than -duration a soak may take: the
// workers' start, the drain, their exit, the store's removal.
const watchdogSlack = 5 * time.Minute

// stallLimit is how long the current lineage may go without a rotation, a
// successful request or a login before the orchestrator gives up on it.
const stallLimit = 45 * time.Second
