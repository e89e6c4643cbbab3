package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/refreshtest"
)

// soak runs one store's soak and prints its summary; it returns the exit
// status. Everything it creates (workers, store) is gone when it returns,
// whichever way it ends.
func soak(ctx context.Context, o options, kind, exe string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "chaos: %s: %v\n", kind, err)
		return 2
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSetup()
	sp, err := createStore(setupCtx, kind, &o)
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sp.remove(rctx); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s: removing the store: %v\n", kind, err)
		}
	}()
	if err != nil {
		return fail(err)
	}
	// Every step below is bounded; if the soak itself hangs all the same
	// (a bug of its own), give up loudly: print where, remove the store,
	// exit (the kernel then kills the workers, see sysProcAttr).
	watchdog := time.AfterFunc(o.duration+watchdogSlack, func() {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "chaos: %s: the soak itself hangs; goroutines:\n%s\n", kind, buf[:runtime.Stack(buf, true)])
		rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sp.remove(rctx)
		os.Exit(1)
	})
	defer watchdog.Stop()
	store, closeStore, err := sp.open(setupCtx, nil)
	if err != nil {
		return fail(err)
	}
	defer closeStore()

	start := time.Now()
	led := newLedger(start, sp.lease())
	led.tracing = o.trace != ""
	srv := refreshtest.NewServer(refreshtest.Options{
		Lifetime:               o.lifetime,
		OneAccessTokenPerGrant: o.oneAccess,
		OnTokenRequest:         led.onToken,
	})
	defer srv.Close()
	if err := loginAgain(setupCtx, srv, store, led, "start"); err != nil {
		return fail(err)
	}

	spec := workerSpec{Store: sp, TokenURL: srv.TokenURL, APIURL: srv.URL + "/chaos", Goroutines: o.goroutines, Pace: o.pace,
		Faults: storeFaults(o.storeKinds, o.storeRate, o.storeDelay)}
	fl := newFleet(exe, spec, o.workers, o.seed, led, o.verbose)
	defer fl.killAll() // a no-op once they have exited
	if err := fl.startAll(); err != nil {
		return fail(err)
	}

	// The soak proper: chaos until the duration is over or Ctrl-C.
	runCtx, endRun := context.WithTimeout(ctx, o.duration)
	defer endRun()
	chaosCtx, endChaos := context.WithCancel(runCtx)
	defer endChaos()
	phaseCount := map[string]int{}
	var wg sync.WaitGroup
	rng := func(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(o.seed, stream)) }
	wg.Go(guarded(func() {
		log := func(format string, args ...any) {
			fl.logf(format, args...)
			led.trace(time.Now(), "orchestrator: "+format, args...)
		}
		runPhases(chaosCtx, srv, serverPhases(o.serverKinds, o.serverRate), rng(1), log, phaseCount)
	}))
	if o.killEvery > 0 {
		wg.Go(guarded(func() { runKills(chaosCtx, fl, o.killEvery, o.targeted, rng(2)) }))
	}
	if o.freezeEvery > 0 {
		wg.Go(guarded(func() { runFreezes(chaosCtx, fl, o.freezeEvery, o.maxFreeze, o.targeted, rng(3)) }))
	}
	var watchers sync.WaitGroup
	watchCtx, endWatch := context.WithCancel(context.Background())
	defer endWatch()
	watchers.Go(guarded(func() { pollStore(watchCtx, store, led) }))
	watchers.Go(guarded(func() { relogins(watchCtx, srv, store, led, fl.logf) }))
	watchers.Go(guarded(func() { monitor(chaosCtx, fl, srv, led) }))

	<-runCtx.Done()
	endChaos()
	wg.Wait()
	interrupted := ctx.Err() != nil
	var final pair
	var finalOK bool
	if !interrupted {
		// Drain: no more faults; let pending saves land, then stop.
		fl.drain()
		final, finalOK = settle(ctx, store, led, 10*time.Second)
		fl.finish()
	}
	fl.killAll()
	endWatch()
	watchers.Wait()
	if interrupted {
		fmt.Fprintf(os.Stderr, "chaos: %s: interrupted; workers stopped, store removed\n", kind)
		return 130
	}
	v := led.finish(final, finalOK)
	if o.trace != "" {
		name := o.trace
		if len(o.stores) > 1 {
			name += "." + kind
		}
		if err := writeFile(name, led.writeTrace); err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s: trace: %v\n", kind, err)
		}
		_, incidents, _, _ := fl.totals()
		for i, inc := range incidents {
			if inc.stderr == "" {
				continue
			}
			err := writeFile(fmt.Sprintf("%s.%d-%s-%s.stderr", name, i+1, inc.kind, inc.worker), func(w io.Writer) error {
				_, err := io.WriteString(w, inc.stderr)
				return err
			})
			if err != nil {
				fmt.Fprintf(os.Stderr, "chaos: %s: trace: %v\n", kind, err)
			}
		}
	}
	return printSummary(os.Stdout, summaryInput{o: o, sp: sp, start: start, end: time.Now(), led: led, fl: fl,
		stats: srv.Stats(), v: v, phases: phaseCount})
}

// loginAgain starts a new grant, as a user logging in does, and saves it
// in the shared store, where the workers will find it.
func loginAgain(ctx context.Context, srv *refreshtest.Server, store refresh.TokenStore, led *ledger, reason string) error {
	tok := srv.Token()
	p, _ := parsePair(tok.RefreshToken)
	led.login(p.grant, reason)
	var err error
	for range 20 {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = store.Save(sctx, refresh.DefaultKey, tok)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("saving the login: %w", err)
	}
	led.stored(p, time.Now())
	return nil
}

// relogins logs in again whenever the ledger reports the current lineage
// lost.
func relogins(ctx context.Context, srv *refreshtest.Server, store refresh.TokenStore, led *ledger, log func(string, ...any)) {
	for {
		select {
		case <-ctx.Done():
			return
		case g := <-led.relogin:
			if g != led.currentGrant() {
				continue
			}
			if err := loginAgain(ctx, srv, store, led, fmt.Sprintf("after grant %d was lost", g)); err != nil {
				fmt.Fprintln(os.Stderr, "chaos:", err)
				continue
			}
			log("grant %d lost; logged in again as grant %d", g, led.currentGrant())
		}
	}
}

// pollStore reads the store often, so that the ledger knows which pair
// reached it even when a worker was killed before it could say so.
func pollStore(ctx context.Context, store refresh.TokenStore, led *ledger) {
	var last pair
	for sleep(ctx, 25*time.Millisecond) {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		tok, err := store.Load(lctx, refresh.DefaultKey)
		cancel()
		if err == nil {
			if p, ok := parsePair(tok.RefreshToken); ok {
				led.stored(p, time.Now())
				if p != last {
					led.trace(time.Now(), "orchestrator: the store holds %v", p)
					last = p
				}
			}
		}
	}
}

// monitor watches for hung and stuck workers, and for a lineage that no
// longer moves (a safety net: a lost lineage is normally found by its
// reuse), until ctx ends.
func monitor(ctx context.Context, fl *fleet, srv *refreshtest.Server, led *ledger) {
	for sleep(ctx, time.Second) {
		fl.watch()
		g := led.currentGrant()
		_, lastRot := led.progressOf(g)
		logins := led.loginList()
		since := maxTime(maxTime(lastRot, fl.lastOK()), logins[len(logins)-1].at)
		if time.Since(since) > stallLimit {
			srv.RevokeGrants() // whoever holds it: it is over
			led.stall(g, fmt.Sprintf("no rotation, successful request or login for %v", stallLimit))
		}
	}
}

// settle waits until the store holds the newest pair of the current
// lineage, no worker holds the lock and no rotation happened for a
// second, or for at most limit; it returns what the store holds.
func settle(ctx context.Context, store refresh.TokenStore, led *ledger, limit time.Duration) (pair, bool) {
	deadline := time.Now().Add(limit)
	for {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		tok, err := store.Load(lctx, refresh.DefaultKey)
		cancel()
		var p pair
		ok := err == nil
		if ok {
			p, ok = parsePair(tok.RefreshToken)
		}
		if errors.Is(err, refresh.ErrNotFound) {
			ok = false
		}
		g := led.currentGrant()
		newest, last := led.progressOf(g)
		quiet := ok && p == (pair{g, newest}) && !led.holding() && time.Since(last) > time.Second
		if quiet || time.Now().After(deadline) || ctx.Err() != nil {
			return p, ok
		}
		time.Sleep(100 * time.Millisecond)
	}
}
