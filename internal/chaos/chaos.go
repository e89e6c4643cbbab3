package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/oauthkit/refresh/refreshtest"
	"github.com/oauthkit/refresh/storetest"
)

// A phase is a while during which the token endpoint injects one kind of
// fault (or none).
type phase struct {
	name   string
	faults refreshtest.Faults
}

// Server fault kinds, as -server-faults names them.
var serverFaultKinds = []string{"5xx", "429", "reset", "after-grant", "latency"}

// serverPhases returns the phases the enabled kinds allow, at rate. A
// fault after the grant always costs a lineage (the client, not knowing
// the refresh token was spent, sends it again), so those phases fail fewer
// requests.
func serverPhases(kinds map[string]bool, rate float64) []phase {
	var ps []phase
	add := func(kind, name string, f refreshtest.Faults) {
		if kinds[kind] {
			ps = append(ps, phase{name, f})
		}
	}
	add("5xx", "503", refreshtest.Faults{Rate: rate, Kind: refreshtest.FaultUnavailable, RetryAfter: time.Second})
	add("5xx", "502 HTML", refreshtest.Faults{Rate: rate, Kind: refreshtest.FaultHTML})
	add("429", "429", refreshtest.Faults{Rate: rate, Kind: refreshtest.FaultTooManyRequests, RetryAfter: time.Second})
	add("reset", "reset", refreshtest.Faults{Rate: rate, Kind: refreshtest.FaultReset})
	add("after-grant", "reset after the grant", refreshtest.Faults{Rate: rate / 2, Kind: refreshtest.FaultReset, AfterGrant: true})
	add("after-grant", "503 after the grant", refreshtest.Faults{Rate: rate / 2, Kind: refreshtest.FaultUnavailable, AfterGrant: true})
	add("latency", "latency 300ms", refreshtest.Faults{Latency: 300 * time.Millisecond})
	add("latency", "latency 900ms + 503", refreshtest.Faults{Latency: 900 * time.Millisecond, Rate: rate, Kind: refreshtest.FaultUnavailable})
	return ps
}

// runPhases changes the server's faults every few seconds, with a quiet
// phase between two faulty ones, until ctx ends; then turns them off.
func runPhases(ctx context.Context, srv *refreshtest.Server, phases []phase, rng *rand.Rand, log func(string, ...any), count map[string]int) {
	defer srv.SetFaults(refreshtest.Faults{})
	if len(phases) == 0 {
		return
	}
	for i := 0; ; i++ {
		p := phase{name: "none"}
		if i%2 == 1 {
			p = phases[rng.IntN(len(phases))]
		}
		srv.SetFaults(p.faults)
		count[p.name]++
		log("server faults: %s", p.name)
		if !sleep(ctx, 3*time.Second+time.Duration(rng.Int64N(int64(5*time.Second)))) {
			return
		}
	}
}

// runKills SIGKILLs a random worker about every mean, until ctx ends. A
// share of the kills (targeted) waits for the worker to take the store's
// lock and strikes then, inside its critical section.
func runKills(ctx context.Context, f *fleet, mean time.Duration, targeted float64, rng *rand.Rand) {
	for sleep(ctx, jitter(rng, mean)) {
		if p := victim(ctx, f, targeted, rng); p != nil {
			f.kill(p)
		}
	}
}

// runFreezes SIGSTOPs a random worker about every mean, for up to
// maxFreeze, until ctx ends (a frozen worker is then resumed at once); a
// share of them (targeted) inside its critical section.
func runFreezes(ctx context.Context, f *fleet, mean, maxFreeze time.Duration, targeted float64, rng *rand.Rand) {
	for sleep(ctx, jitter(rng, mean)) {
		const least = 200 * time.Millisecond
		d := least + time.Duration(rng.Int64N(int64(max(maxFreeze-least, 1))))
		if p := victim(ctx, f, targeted, rng); p != nil {
			f.freeze(p, d, ctx.Done())
		}
	}
}

// victim picks a worker to hit: at once, or, with probability targeted,
// when it next takes the store's lock (nil if it does not within 10 s).
func victim(ctx context.Context, f *fleet, targeted float64, rng *rand.Rand) *proc {
	aim := rng.Float64() < targeted
	p := f.pick(rng)
	if p == nil || !aim {
		return p
	}
	select {
	case <-f.nextLock(p):
		return p
	case <-p.exited:
	case <-time.After(10 * time.Second):
	case <-ctx.Done():
	}
	return nil
}

// jitter returns a duration between mean/2 and 3·mean/2.
func jitter(rng *rand.Rand, mean time.Duration) time.Duration {
	return mean/2 + time.Duration(rng.Int64N(int64(mean)+1))
}

// sleep waits for d; it reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Store fault kinds, as -store-faults names them.
var storeFaultKinds = []string{"error", "error-after", "panic", "panic-after", "delay"}

// storeFaults returns the random store faults of the enabled kinds: each at
// rate per call, delays at 2.5 × rate, up to maxDelay.
func storeFaults(kinds map[string]bool, rate float64, maxDelay time.Duration) storetest.Random {
	r := storetest.Random{}
	pick := func(kind string, v float64) float64 {
		if kinds[kind] {
			return v
		}
		return 0
	}
	r.Error, r.ErrorAfter = pick("error", rate), pick("error-after", rate)
	r.Panic, r.PanicAfter = pick("panic", rate), pick("panic-after", rate)
	if r.Delay = pick("delay", 2.5*rate); r.Delay > 0 {
		r.MaxDelay = maxDelay
	}
	return r
}

// parseKinds reads a comma-separated list of kinds out of known; "all"
// means every one, "none" or "" none.
func parseKinds(flag, list string, known []string) (map[string]bool, error) {
	m := map[string]bool{}
	switch list {
	case "all":
		for _, k := range known {
			m[k] = true
		}
		return m, nil
	case "none", "":
		return m, nil
	}
	for _, k := range strings.Split(list, ",") {
		k = strings.TrimSpace(k)
		ok := false
		for _, want := range known {
			ok = ok || k == want
		}
		if !ok {
			return nil, fmt.Errorf("-%s: unknown kind %q (known: %s, all, none)", flag, k, strings.Join(known, ", "))
		}
		m[k] = true
	}
	return m, nil
}
