//go:build unix

package procs

import (
	"os"
	"syscall"
)

// Supported reports whether this platform can run the workers: it must
// stop and continue processes (SIGSTOP, SIGCONT).
const Supported = true

func freeze(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }
func thaw(p *os.Process) error   { return p.Signal(syscall.SIGCONT) }
