package procs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Watchdog bounds every wait of the parent: long enough for a loaded
// machine, short enough that a hang fails rather than blocks the run. It
// is no measure of speed.
const Watchdog = 2 * time.Minute

// maxNoise is how many lines of a worker's other output are kept.
const maxNoise = 20

// Proc is a running worker, seen from the parent.
type Proc struct {
	ID    string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu     sync.Mutex // protects the fields below
	ready  bool
	paused bool
	saved  string
	reauth bool
	locks  [2]int            // Lock calls, and locks taken
	served map[string]string // goroutine → fingerprint of its last 200
	report *Report
	ended  bool // its stdout closed
	killed bool
	noise  []string
}

// Start starts a worker: the test binary, running only the test called
// test (testing.T.Name of the test that calls FromEnv and Work), with spec
// in Env. The worker is killed when t ends, if it still runs.
func Start(t testing.TB, test string, spec Spec) *Proc {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run="+RunPattern(test))
	cmd.Env = append(environ(), Env+"="+string(b))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("procs: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("procs: starting worker %s: %v", spec.ID, err)
	}
	p := &Proc{ID: spec.ID, cmd: cmd, stdin: stdin, served: map[string]string{}}
	t.Cleanup(func() {
		thaw(cmd.Process) // if the test froze it
		cmd.Process.Kill()
		cmd.Wait()
	})
	go p.read(stdout)
	return p
}

// environ is this process's environment without Env.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, Env+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// read follows the worker's output until it ends.
func (p *Proc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.parse(sc.Text())
		p.mu.Unlock()
	}
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
}

// parse applies one line of output. Called with mu held.
func (p *Proc) parse(line string) {
	msg, ok := strings.CutPrefix(line, prefix)
	if !ok {
		if len(p.noise) < maxNoise {
			p.noise = append(p.noise, line)
		}
		return
	}
	kind, rest, _ := strings.Cut(msg, " ")
	switch kind {
	case "ready":
		p.ready = true
	case "paused":
		p.paused = true
	case "saved":
		p.saved = rest
	case "locking":
		p.locks[0]++
	case "locked":
		p.locks[1]++
	case "reauth":
		p.reauth = true
	case "served":
		g, fp, _ := strings.Cut(rest, " ")
		p.served[g] = fp
	case "report":
		var r Report
		if err := json.Unmarshal([]byte(rest), &r); err != nil {
			p.noise = append(p.noise, fmt.Sprintf("(bad report: %v)", err))
			return
		}
		p.report = &r
	}
}

// State is what the parent knows of a worker at one moment.
type State struct {
	Ready, Paused, Reauth bool
	Saved                 string // the paused save's outcome once it returned
	Ended                 bool   // the worker's output ended (it exited, or was killed)
	// Waiting says that a Lock call has not returned; Locks counts the
	// locks taken.
	Waiting bool
	Locks   int
}

// State returns what the worker has said so far.
func (p *Proc) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return State{Ready: p.ready, Paused: p.paused, Reauth: p.reauth, Saved: p.saved, Ended: p.ended,
		Waiting: p.locks[0] > p.locks[1], Locks: p.locks[1]}
}

// ServedWith returns how many of the worker's goroutines got their last
// 200 with the access token of fingerprint fp.
func (p *Proc) ServedWith(fp string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.served {
		if f == fp {
			n++
		}
	}
	return n
}

// failure describes a worker that ended unexpectedly, or returns "".
// Called with mu held.
func (p *Proc) failure() string {
	if !p.ended || p.killed || p.report != nil {
		return ""
	}
	return fmt.Sprintf("worker %s ended without a report; its output: %q", p.ID, p.noise)
}
