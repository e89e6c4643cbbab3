package main

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"time"
)

// capBuffer keeps the first stderrKeep bytes written to it.
type capBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := stderrKeep - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// excerpt returns the interesting start of a worker's stderr: from the
// first panic, fatal error or race report, a few lines; for a goroutine
// dump (SIGQUIT), one line per goroutine that runs code of this project.
func excerpt(stderr string) string {
	if strings.HasPrefix(stderr, "SIGQUIT") {
		return goroutines(stderr)
	}
	lines := strings.Split(redact(stderr), "\n")
	start := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") ||
			strings.Contains(l, "WARNING: DATA RACE") || strings.HasPrefix(l, "SIGQUIT") {
			start = i
			break
		}
	}
	lines = lines[start:min(len(lines), start+excerptLines)]
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// goroutines summarizes a goroutine dump: each goroutine's header and its
// innermost frame in this project's code.
func goroutines(dump string) string {
	var out []string
	for _, block := range strings.Split(redact(dump), "\n\n") {
		head, rest, _ := strings.Cut(block, "\n")
		if !strings.HasPrefix(head, "goroutine ") {
			continue
		}
		for _, l := range strings.Split(rest, "\n") {
			if strings.HasPrefix(l, "github.com/oauthkit/refresh") || strings.HasPrefix(l, "main.") {
				name := l[:max(strings.LastIndex(l, "("), 0)] // without its arguments
				out = append(out, strings.TrimSuffix(head, ":")+" in "+name)
				break
			}
		}
	}
	if len(out) > excerptLines {
		out = append(out[:excerptLines], fmt.Sprintf("… %d more", len(out)-excerptLines))
	}
	return strings.Join(out, "\n")
}

// incident is a crash, a hang or a stuck worker: each is a failure of the
// soak.
type incident struct {
	kind    string // "crash", "hang", "stuck", "race"
	worker  string
	at      time.Time
	what    string
	excerpt string
	stderr  string // all of it (up to stderrKeep), redacted
}
