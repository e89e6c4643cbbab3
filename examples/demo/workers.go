package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthkit/refresh/filestore"
)

// A fleet sends the demo's traffic: goroutines of this process (local), or
// worker processes that share a token directory (procs).
type fleet interface {
	// start sends requests until the deadline.
	start(deadline time.Time) error
	// progress returns the requests sent and failed so far.
	progress() (requests, failed int64)
	// prepareStorm makes about n requests wait at a barrier and returns
	// how many there are.
	prepareStorm(n int) (int, error)
	// fireStorm releases them and returns how many got a 200.
	fireStorm() (int, error)
	// stop makes the traffic end early (Ctrl-C); finish still collects
	// the reports.
	stop()
	// finish waits for the traffic to end and returns one report per
	// process.
	finish() ([]report, error)
}

// local is the in-process fleet: one engine, many goroutines.
type local struct {
	d           *driver
	concurrency int
}

func (l *local) start(deadline time.Time) error {
	l.d.start(l.concurrency, deadline)
	return nil
}

func (l *local) progress() (int64, int64) { return l.d.requests.Load(), l.d.failed.Load() }

func (l *local) prepareStorm(n int) (int, error) {
	l.d.prepareStorm(n)
	return n, nil
}

func (l *local) fireStorm() (int, error) { return l.d.fireStorm(), nil }

func (l *local) finish() ([]report, error) {
	l.d.wait()
	l.d.tr.CloseIdleConnections()
	return []report{l.d.report()}, nil
}

func (l *local) stop() { l.d.stopNow() }

// The worker protocol. The parent starts each worker with workerEnv set to
// a JSON workerSpec, then talks to it in lines: on the worker's stdin
//
//	start <deadline, Unix nanoseconds>
//	storm <n>      make n requests wait at a barrier
//	fire           release them
//
// and EOF, which means stop now; on the worker's stdout
//
//	ready
//	progress <requests> <failed>     every 200ms while traffic runs
//	storm-ready
//	storm-done <requests that got a 200>
//	report <JSON report>             when the traffic is over; then it exits
//
// Errors go to stderr, which the workers share with the parent.
const workerEnv = "REFRESH_DEMO_WORKER"

// workerSpec is what a worker needs to know. It holds no secret: the worker
// finds the token in the shared directory, as a restarted program would.
type workerSpec struct {
	ID          int    `json:"id"`
	Dir         string `json:"dir"`
	TokenURL    string `json:"token_url"`
	APIURL      string `json:"api_url"`
	Concurrency int    `json:"concurrency"`
}

// workerMain is main in a worker process.
func workerMain(specJSON string) int {
	// Ctrl-C in a terminal reaches the whole process group; the parent
	// decides when workers stop (it closes their stdin).
	signal.Ignore(os.Interrupt)

	var spec workerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "demo worker: bad", workerEnv+":", err)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "demo worker %d: %v\n", spec.ID, err)
		return 1
	}
	// The same directory in every worker: the store's flock makes one
	// process refresh while the others wait and adopt its token.
	store, err := filestore.New(spec.Dir)
	if err != nil {
		return fail(err)
	}
	d, eng, err := newDriver(spec.TokenURL, spec.APIURL, store, spec.Concurrency)
	if err != nil {
		return fail(err)
	}

	var outMu sync.Mutex
	send := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}

	cmds := make(chan []string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 {
				cmds <- f
			}
		}
	}()

	send("ready")
	var (
		started bool
		done    chan struct{} // closed when the loops are over; nil when not running
		over    bool          // the loops are over: report once no storm is pending
	)
	for {
		if over && d.storm == nil {
			// A refresh may still be saving a rotated token: Close waits
			// for it (a process that exits first loses the token, and the
			// others spend the old one).
			if err := eng.Close(context.Background()); err != nil {
				d.noteErr(err)
			}
			d.tr.CloseIdleConnections()
			b, err := json.Marshal(d.report())
			if err != nil {
				return fail(err)
			}
			send("report %s", b)
			return 0
		}
		select {
		case f, ok := <-cmds:
			if !ok { // EOF: the parent wants us to stop, or is gone
				if !started {
					return 0
				}
				d.stopNow()
				if d.storm != nil {
					d.fireStorm() // release it, so that we can report
				}
				cmds = nil // wait for the loops
				continue
			}
			switch {
			case f[0] == "start" && len(f) == 2 && !started:
				ns, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					return fail(fmt.Errorf("bad command %q", f))
				}
				started = true
				d.start(spec.Concurrency, time.Unix(0, ns))
				done = make(chan struct{})
				go func(done chan struct{}) { d.wait(); close(done) }(done)
				go func(done chan struct{}) {
					t := time.NewTicker(200 * time.Millisecond)
					defer t.Stop()
					for {
						select {
						case <-done:
							return
						case <-t.C:
							send("progress %d %d", d.requests.Load(), d.failed.Load())
						}
					}
				}(done)
			case f[0] == "storm" && len(f) == 2 && d.storm == nil:
				n, err := strconv.Atoi(f[1])
				if err != nil || n < 1 {
					return fail(fmt.Errorf("bad command %q", f))
				}
				d.prepareStorm(n)
				send("storm-ready")
			case f[0] == "fire" && d.storm != nil:
				send("storm-done %d", d.fireStorm())
			default:
				return fail(fmt.Errorf("unexpected command %q", f))
			}
		case <-done:
			over, done = true, nil
		}
	}
}

// proc is a running worker, seen from the parent.
type proc struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // protocol lines other than progress; closed at EOF

	requests, failed atomic.Int64 // from its latest progress line
}

// procs is the fleet of worker processes.
type procs []*proc

// startWorkers starts n copies of this program in worker mode and waits
// until each is ready.
func startWorkers(n int, spec workerSpec) (procs, error) {
	// Under `go run` this is the binary go built in a temporary directory,
	// which lives as long as go run does.
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cannot find this program to start workers (try -workers 1): %w", err)
	}
	var ps procs
	for i := range n {
		spec.ID = i + 1
		b, _ := json.Marshal(spec)
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), workerEnv+"="+string(b))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			ps.kill()
			return nil, err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			ps.kill()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			ps.kill()
			return nil, fmt.Errorf("starting worker %d: %w", spec.ID, err)
		}
		p := &proc{id: spec.ID, cmd: cmd, stdin: stdin, lines: make(chan string, 8)}
		go p.read(stdout)
		ps = append(ps, p)
	}
	for _, p := range ps {
		if _, err := p.expect("ready", 30*time.Second); err != nil {
			ps.kill()
			return nil, err
		}
	}
	return ps, nil
}

func (p *proc) read(r io.Reader) {
	defer close(p.lines)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20) // a report is a few kilobytes
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "progress "); ok {
			var req, failed int64
			if _, err := fmt.Sscan(rest, &req, &failed); err == nil {
				p.requests.Store(req)
				p.failed.Store(failed)
			}
			continue
		}
		p.lines <- line
	}
}

// expect waits for the worker's next protocol line, which must start with
// word, and returns the rest of it.
func (p *proc) expect(word string, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			return "", fmt.Errorf("worker %d exited before it said %q", p.id, word)
		}
		rest, found := strings.CutPrefix(line, word)
		if !found {
			return "", fmt.Errorf("worker %d said %.40q, want %q", p.id, line, word)
		}
		return strings.TrimSpace(rest), nil
	case <-t.C:
		return "", fmt.Errorf("worker %d did not say %q within %v", p.id, word, timeout)
	}
}

func (p *proc) send(line string) error {
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		return fmt.Errorf("worker %d: %w", p.id, err)
	}
	return nil
}

// each runs f for every worker, stopping at the first error.
func (ps procs) each(f func(*proc) error) error {
	for _, p := range ps {
		if err := f(p); err != nil {
			return err
		}
	}
	return nil
}

func (ps procs) start(deadline time.Time) error {
	cmd := "start " + strconv.FormatInt(deadline.UnixNano(), 10)
	return ps.each(func(p *proc) error { return p.send(cmd) })
}

func (ps procs) progress() (requests, failed int64) {
	for _, p := range ps {
		requests += p.requests.Load()
		failed += p.failed.Load()
	}
	return requests, failed
}

func (ps procs) prepareStorm(n int) (int, error) {
	per := (n + len(ps) - 1) / len(ps)
	if err := ps.each(func(p *proc) error { return p.send("storm " + strconv.Itoa(per)) }); err != nil {
		return 0, err
	}
	err := ps.each(func(p *proc) error { _, err := p.expect("storm-ready", 30*time.Second); return err })
	return per * len(ps), err
}

func (ps procs) fireStorm() (int, error) {
	if err := ps.each(func(p *proc) error { return p.send("fire") }); err != nil {
		return 0, err
	}
	ok := 0
	err := ps.each(func(p *proc) error {
		rest, err := p.expect("storm-done", 30*time.Second)
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(rest)
		ok += n
		return err
	})
	return ok, err
}

func (ps procs) finish() ([]report, error) {
	var reps []report
	for _, p := range ps {
		rest, err := p.expect("report", 60*time.Second)
		if err != nil {
			ps.kill()
			return nil, err
		}
		var rep report
		if err := json.Unmarshal([]byte(rest), &rep); err != nil {
			ps.kill()
			return nil, fmt.Errorf("worker %d: bad report: %v", p.id, err)
		}
		reps = append(reps, rep)
		for range p.lines { // until EOF, then the process can be waited for
		}
		p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			return nil, fmt.Errorf("worker %d: %v", p.id, err)
		}
	}
	return reps, nil
}

// stop asks every worker to stop now: it reports, then exits.
func (ps procs) stop() {
	for _, p := range ps {
		p.stdin.Close()
	}
}

// kill ends the workers that have not been waited for, after an error:
// closing stdin asks each to stop; one that does not within 3 seconds is
// killed.
func (ps procs) kill() {
	var wg sync.WaitGroup
	for _, p := range ps {
		if p.cmd.ProcessState != nil {
			continue // already waited for
		}
		p.stdin.Close()
		wg.Go(func() {
			go func() {
				for range p.lines {
				}
			}()
			exited := make(chan struct{})
			go func() { p.cmd.Wait(); close(exited) }()
			select {
			case <-exited:
			case <-time.After(3 * time.Second):
				p.cmd.Process.Kill()
				<-exited
			}
		})
	}
	wg.Wait()
}
