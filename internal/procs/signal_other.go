//go:build !unix

package procs

import (
	"errors"
	"os"
)

// Supported reports whether this platform can run the workers: it must
// stop and continue processes (SIGSTOP, SIGCONT).
const Supported = false

var errUnsupported = errors.New("procs: cannot stop a process on this platform")

func freeze(*os.Process) error { return errUnsupported }
func thaw(*os.Process) error   { return errUnsupported }
