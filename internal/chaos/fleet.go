package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/oauthkit/refresh/storetest"
)

// Limits of the hang detection. They are generous: the soak must not fail
// on a loaded machine, only on a worker that is really stuck. A request is
// bounded by the client's 20 s timeout; a worker prints a line every 500 ms.
const (
	silentLimit   = 30 * time.Second // no line at all from a running worker
	requestLimit  = 90 * time.Second // one request in flight
	stuckLimit    = 60 * time.Second // no success while the others succeed
	exitLimit     = 30 * time.Second // to exit after EOF
	dumpWait      = 5 * time.Second  // after SIGQUIT, for the goroutine dump
	readyLimit    = 60 * time.Second // to say ready
	stderrKeep    = 64 << 10         // bytes of a worker's stderr kept
	excerptLines  = 20
	restartJitter = 1500 * time.Millisecond
)

// proc is one incarnation of a worker slot.
type proc struct {
	slot, inc int
	id        string // "<slot>.<inc>", also the header on its token requests
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	started   time.Time
	ready     chan struct{} // closed when it said ready
	exited    chan struct{} // closed once waited for
	stderr    capBuffer

	// Guarded by fleet.mu.
	isReady   bool
	frozen    bool      // SIGSTOPped now
	resumed   time.Time // last SIGCONT
	killed    bool      // we sent SIGKILL
	quit      bool      // we sent SIGQUIT (a hang)
	stuck     bool      // reported stuck once
	lastLine  time.Time
	lockWait  chan struct{} // closed at its next lock; nil if nobody waits
	last      progress      // latest progress line
	exitState string        // how it ended; "" while running
}

// fleet runs the worker processes.
type fleet struct {
	exe     string
	spec    workerSpec // template; ID and Faults.Seed are set per incarnation
	seed    uint64
	led     *ledger
	verbose bool

	mu        sync.Mutex // guards every field below
	rng       *rand.Rand // restart delays
	slots     []*proc    // current incarnation of each slot
	all       []*proc
	stopping  bool // no more restarts
	finishing bool // stdin closed on purpose: exit 0 expected
	incidents []incident
	kills     int
	freezes   []time.Duration
	wg        sync.WaitGroup // process goroutines and restarts
}

func newFleet(exe string, spec workerSpec, n int, seed uint64, led *ledger, verbose bool) *fleet {
	return &fleet{exe: exe, spec: spec, seed: seed, led: led, verbose: verbose,
		rng: rand.New(rand.NewPCG(seed, 0x5eed)), slots: make([]*proc, n)}
}

func (f *fleet) logf(format string, args ...any) {
	if f.verbose {
		fmt.Fprintf(os.Stderr, "chaos %s "+format+"\n", append([]any{f.led.rel(time.Now())}, args...)...)
	}
}

// startAll starts every slot and waits until each worker is ready.
func (f *fleet) startAll() error {
	for slot := range f.slots {
		if err := f.start(slot, 1); err != nil {
			return err
		}
	}
	for _, p := range f.current() {
		select {
		case <-p.ready:
		case <-p.exited:
			return fmt.Errorf("worker %s exited before it was ready:\n%s", p.id, excerpt(p.stderr.String()))
		case <-time.After(readyLimit):
			return fmt.Errorf("worker %s was not ready within %v", p.id, readyLimit)
		}
	}
	return nil
}

// start starts incarnation inc of slot.
func (f *fleet) start(slot, inc int) error {
	sp := f.spec
	sp.ID = fmt.Sprintf("%d.%d", slot+1, inc)
	sp.Faults.Seed = f.seed*1_000_003 + uint64(slot)*1009 + uint64(inc)
	b, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	p := &proc{slot: slot, inc: inc, id: sp.ID, ready: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(f.exe)
	p.cmd.Env = append(os.Environ(), workerEnv+"="+string(b), "GORACE=halt_on_error=1")
	p.cmd.SysProcAttr = sysProcAttr()
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return nil
	}
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("starting worker %s: %w", p.id, err)
	}
	p.started, p.lastLine = time.Now(), time.Now()
	f.slots[slot] = p
	f.all = append(f.all, p)
	f.wg.Go(guarded(func() { f.read(p, stdout) }))
	f.logf("worker %s started (pid %d)", p.id, p.cmd.Process.Pid)
	f.led.trace(p.started, "orchestrator: worker %s started", p.id)
	return nil
}

// read handles a worker's lines until it exits, then waits for it.
func (f *fleet) read(p *proc, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f.line(p, sc.Text())
	}
	io.Copy(io.Discard, stdout)
	err := p.cmd.Wait()
	f.exit(p, err)
}

func (f *fleet) line(p *proc, line string) {
	tag, rest, _ := strings.Cut(line, " ")
	now := time.Now()
	f.mu.Lock()
	p.lastLine = now
	f.mu.Unlock()
	fields := strings.Fields(rest)
	nanos := func(s string) time.Time {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.Unix(0, n)
	}
	switch tag {
	case "ready":
		f.mu.Lock()
		if !p.isReady {
			p.isReady = true
			close(p.ready)
		}
		f.mu.Unlock()
	case "P":
		var pr progress
		if json.Unmarshal([]byte(rest), &pr) == nil {
			f.mu.Lock()
			p.last = pr
			f.mu.Unlock()
		}
	case "L", "S":
		if len(fields) == 3 {
			g, _ := strconv.Atoi(fields[0])
			n, _ := strconv.Atoi(fields[1])
			at := nanos(fields[2])
			if tag == "L" {
				f.led.loaded(p.id, pair{g, n}, at)
				f.led.trace(at, "worker %s: store: loaded %d/%d", p.id, g, n)
			} else {
				f.led.stored(pair{g, n}, at)
				f.led.trace(at, "worker %s: store: saved %d/%d", p.id, g, n)
			}
		}
	case "K", "U":
		if tag == "K" {
			f.mu.Lock()
			if p.lockWait != nil {
				close(p.lockWait)
				p.lockWait = nil
			}
			f.mu.Unlock()
		}
		f.led.locked(p.id, nanos(rest), tag == "U")
		f.led.trace(nanos(rest), "worker %s: store: %s", p.id, map[string]string{"K": "locked", "U": "unlocking"}[tag])
	case "E":
		if t, msg, ok := strings.Cut(rest, " "); ok {
			f.led.engineLog(p.id, nanos(t), msg)
			f.logf("worker %s: %s", p.id, msg)
		}
	case "Q":
		f.led.lostLease(p.id, nanos(rest))
		f.logf("worker %s: lease lost", p.id)
	default:
		f.logf("worker %s said %.80q", p.id, redact(line))
	}
}

// exit classifies how a worker ended and restarts its slot if the soak
// goes on.
func (f *fleet) exit(p *proc, err error) {
	now := time.Now()
	ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	stderr := p.stderr.String()
	f.mu.Lock()
	defer f.mu.Unlock()
	defer close(p.exited)
	defer func() { f.led.trace(now, "orchestrator: worker %s exited (%s)", p.id, p.exitState) }()
	switch {
	case p.killed && ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		p.exitState = "killed"
	case p.quit:
		p.exitState = "hung"
	case f.finishing && err == nil:
		p.exitState = "done"
	default:
		kind := "crash"
		if strings.Contains(stderr, "WARNING: DATA RACE") {
			kind = "race"
		}
		what := fmt.Sprint(err)
		if err == nil {
			what = "exited on its own with status 0"
		}
		p.exitState = kind
		f.incidents = append(f.incidents, incident{kind: kind, worker: p.id, at: now, what: what, excerpt: excerpt(stderr), stderr: redact(stderr)})
		f.led.crash(p.id, now)
		f.logf("worker %s: %s (%s)", p.id, kind, what)
	}
	if !f.stopping && f.slots[p.slot] == p {
		delay := 300*time.Millisecond + time.Duration(f.rng.Int64N(int64(restartJitter)))
		f.wg.Go(func() {
			time.Sleep(delay)
			if err := f.start(p.slot, p.inc+1); err != nil {
				fmt.Fprintln(os.Stderr, "chaos:", err)
			}
		})
	}
}

// current returns the current incarnation of each slot.
func (f *fleet) current() []*proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ps []*proc
	for _, p := range f.slots {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// drain tells every worker to stop its traffic and its store faults.
func (f *fleet) drain() {
	for _, p := range f.current() {
		io.WriteString(p.stdin, "drain\n")
	}
}

// finish closes every worker's stdin, which asks it to report and exit,
// and waits. A worker that does not exit in time hangs.
func (f *fleet) finish() {
	f.mu.Lock()
	f.stopping, f.finishing = true, true
	f.mu.Unlock()
	for _, p := range f.current() {
		p.stdin.Close()
	}
	deadline := time.After(exitLimit)
	for _, p := range f.current() {
		select {
		case <-p.exited:
		case <-deadline:
			f.mu.Lock()
			if p.exitState == "" && !p.quit {
				f.hang(p, fmt.Sprintf("did not exit within %v of being told to", exitLimit))
			}
			f.mu.Unlock()
			<-p.exited
		}
	}
	f.wg.Wait()
}

// killAll ends every worker at once (an interrupted soak, an error).
func (f *fleet) killAll() {
	f.mu.Lock()
	f.stopping = true
	var ps []*proc
	for _, p := range f.all {
		if p.exitState == "" {
			p.killed = true
			syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
			syscall.Kill(p.cmd.Process.Pid, syscall.SIGCONT)
			ps = append(ps, p)
		}
	}
	f.mu.Unlock()
	for _, p := range ps {
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
	}
}

// totals adds up the latest progress of every incarnation.
func (f *fleet) totals() (t progress, incidents []incident, kills int, freezes []time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Failed, t.FirstErr, t.Log = map[string]int64{}, map[string]string{}, map[string]int64{}
	for _, p := range f.all {
		t.OK += p.last.OK
		for k, v := range p.last.Failed {
			t.Failed[k] += v
		}
		for k, v := range p.last.FirstErr {
			if _, ok := t.FirstErr[k]; !ok {
				t.FirstErr[k] = v
			}
		}
		for k, v := range p.last.Log {
			t.Log[k] += v
		}
		addFaults(&t.Faults, p.last.Faults)
	}
	return t, append([]incident(nil), f.incidents...), f.kills, append([]time.Duration(nil), f.freezes...)
}

func addFaults(dst *storetest.FaultStats, src storetest.FaultStats) {
	for op := range dst.Calls {
		dst.Calls[op] += src.Calls[op]
		for k := range dst.Injected[op] {
			dst.Injected[op][k] += src.Injected[op][k]
		}
	}
}

// lastOK is when any worker last had a request succeed.
func (f *fleet) lastOK() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t time.Time
	for _, p := range f.all {
		if p.last.LastOK > 0 {
			t = maxTime(t, time.Unix(0, p.last.LastOK))
		}
	}
	return t
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
