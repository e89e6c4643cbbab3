//go:build unix && !linux

package main

import "syscall"

// sysProcAttr puts a worker in its own process group, so that Ctrl-C in a
// terminal reaches only the orchestrator, which stops the workers itself.
// Without Linux's Pdeathsig, a worker whose orchestrator died exits when
// its stdin closes (unless it is frozen).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
