package main

import (
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"
)

// pick returns a worker that is ready, running and not frozen, or nil.
func (f *fleet) pick(rng *rand.Rand) *proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ps []*proc
	for _, p := range f.slots {
		if p != nil && p.isReady && !p.frozen && p.exitState == "" && !p.killed && !p.quit && time.Since(p.started) > time.Second {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 || f.stopping {
		return nil
	}
	return ps[rng.IntN(len(ps))]
}

// nextLock returns a channel closed when p next takes the store's lock,
// so that a kill or a freeze can hit it inside its critical section.
func (f *fleet) nextLock(p *proc) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.lockWait == nil {
		p.lockWait = make(chan struct{})
	}
	return p.lockWait
}

// kill SIGKILLs p; its slot is restarted.
func (f *fleet) kill(p *proc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.exitState != "" || f.stopping {
		return
	}
	p.killed = true
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return
	}
	f.kills++
	f.led.kill(p.id, time.Now())
	f.logf("SIGKILL worker %s", p.id)
}

// freeze SIGSTOPs p for d, or until done is closed, then SIGCONTs it.
func (f *fleet) freeze(p *proc, d time.Duration, done <-chan struct{}) {
	f.mu.Lock()
	if p.exitState != "" || f.stopping || syscall.Kill(p.cmd.Process.Pid, syscall.SIGSTOP) != nil {
		f.mu.Unlock()
		return
	}
	p.frozen = true
	from := time.Now()
	f.mu.Unlock()
	f.logf("SIGSTOP worker %s for %v", p.id, d.Round(time.Millisecond))
	select {
	case <-time.After(d):
	case <-done:
	case <-p.exited:
	}
	f.mu.Lock()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
	to := time.Now()
	p.frozen, p.resumed = false, to
	f.freezes = append(f.freezes, to.Sub(from))
	f.mu.Unlock()
	f.led.stop(p.id, from, to)
	f.logf("SIGCONT worker %s", p.id)
}

// watch looks for hung and stuck workers once.
func (f *fleet) watch() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	var fleetOK time.Time
	for _, p := range f.slots {
		if p != nil && p.last.LastOK > 0 {
			fleetOK = maxTime(fleetOK, time.Unix(0, p.last.LastOK))
		}
	}
	for _, p := range f.slots {
		if p == nil || !p.isReady || p.frozen || p.exitState != "" || p.killed || p.quit {
			continue
		}
		alive := maxTime(p.lastLine, p.resumed)
		switch {
		case now.Sub(alive) > silentLimit:
			f.hang(p, fmt.Sprintf("said nothing for %v", now.Sub(alive).Round(time.Second)))
		case time.Duration(p.last.Oldest)*time.Millisecond > requestLimit:
			f.hang(p, fmt.Sprintf("a request has been in flight for %v", time.Duration(p.last.Oldest)*time.Millisecond))
		case !p.stuck && now.Sub(maxTime(p.started, time.Unix(0, p.last.LastOK))) > stuckLimit && now.Sub(fleetOK) < 5*time.Second:
			p.stuck = true
			f.incidents = append(f.incidents, incident{kind: "stuck", worker: p.id, at: now,
				what: fmt.Sprintf("no request succeeded for %v while other workers' did", stuckLimit)})
			f.logf("worker %s is stuck", p.id)
		}
	}
}

// hang records a hung worker and makes it dump its goroutines (SIGQUIT)
// and exit. Called with mu held.
func (f *fleet) hang(p *proc, what string) {
	p.quit = true
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGQUIT)
	f.logf("worker %s hangs: %s", p.id, what)
	f.wg.Go(func() {
		select {
		case <-p.exited:
		case <-time.After(dumpWait):
			syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
		}
		f.mu.Lock()
		stderr := p.stderr.String()
		f.incidents = append(f.incidents, incident{kind: "hang", worker: p.id, at: time.Now(), what: what, excerpt: excerpt(stderr), stderr: redact(stderr)})
		f.mu.Unlock()
	})
}
