package main

import "syscall"

// sysProcAttr puts a worker in its own process group, so that Ctrl-C in a
// terminal reaches only the orchestrator (which stops the workers itself),
// and has the kernel kill it if the orchestrator dies without doing so.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
