// Package procs is the machinery of the multi-process tests: a worker that
// the test binary becomes when it is re-executed (an engine over a shared
// store, sending requests from several goroutines to a protected API), the
// line protocol between a worker and its parent, a store wrapper that
// pauses a worker between the token endpoint's answer and its save, and
// the parent's control of the workers (start, await, SIGKILL, SIGSTOP,
// SIGCONT, report).
//
// storetest.RunProcesses builds its scenarios on it, with refreshtest as
// the server; the conformance module uses it directly with its own server.
//
// # Protocol
//
// The parent starts the test binary with -test.run naming exactly the test
// that starts the workers ([RunPattern]) and [Env] holding the worker's
// [Spec] as JSON. That test, run again in the child, calls [FromEnv] and
// [Work] before anything else, and exits with what Work returns. The
// worker writes lines that start with [prefix] on stdout; other output
// (a test's failure message) is kept for the parent's error messages:
//
//	procs ready                the engine is up; requests start
//	procs served <g> <fp>      goroutine g got a 200 with the access token
//	                           of fingerprint fp, another one than before
//	procs locking              the engine calls the store's Lock
//	procs locked               it holds the lock (after Lock or TryLock)
//	procs reauth               a request failed with ErrReauthRequired, the
//	                           first time
//	procs paused               the first save of a refreshed token waits
//	                           for "resume" (Spec.PauseSave)
//	procs saved <outcome>      that save returned: ok, conflict, error
//	procs report <JSON>        the [Report]; the worker then exits
//
// On stdin the parent sends "resume" to let the paused save go on; EOF
// stops the requests (and lets a paused save go on), after which the
// worker reports and exits. No line carries a token: at most a
// [refresh.Fingerprint].
package procs

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/oauthkit/refresh"
)

// Env is the environment variable that makes the test binary a worker.
const Env = "REFRESH_PROCS_WORKER"

// WorkerHeader is the default request header that names a worker (its
// Spec.ID) on its token requests, so that a server's events can tell which
// process received each answer.
const WorkerHeader = "Procs-Worker"

// goroutineHeader names the worker's goroutine on its API requests; the
// worker's own transport reads it.
const goroutineHeader = "Procs-Goroutine"

// prefix starts every protocol line.
const prefix = "procs "

// Spec is everything a worker needs. It holds no token: the worker finds
// the token in the shared store.
type Spec struct {
	// ID names the worker in failure messages and in Header.
	ID string `json:"id"`
	// Name and Dir are where the shared store is (storetest.Namespace).
	Name string `json:"name"`
	Dir  string `json:"dir"`

	// TokenURL, ClientID, ClientSecret and Auth are the engine's
	// refresh.FormEndpoint; APIURL is what the goroutines GET.
	TokenURL     string             `json:"token_url"`
	ClientID     string             `json:"client_id"`
	ClientSecret string             `json:"client_secret"`
	Auth         refresh.ClientAuth `json:"auth"`
	APIURL       string             `json:"api_url"`
	// Header is the header that carries ID on token requests. Optional:
	// empty means WorkerHeader.
	Header string `json:"header,omitempty"`

	// Goroutines send requests, each waiting Pace after every one.
	Goroutines int           `json:"goroutines"`
	Pace       time.Duration `json:"pace"`
	// Attempts and Timeout are the engine's RefreshAttempts and
	// RefreshTimeout. Optional: 0 means 1 attempt and 30 s.
	Attempts int           `json:"attempts,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
	// Duration ends the requests if the parent has not ended them by
	// then.
	Duration time.Duration `json:"duration"`
	// PauseSave makes the first save of a refreshed token wait for the
	// parent's "resume" (see the protocol).
	PauseSave bool `json:"pause_save,omitempty"`
	// Grant is how the worker gets its tokens: GrantRefresh (the
	// default), GrantClientCredentials (the engine, a
	// refresh.ClientCredentials endpoint), or GrantXOAuth2 (no engine:
	// golang.org/x/oauth2's clientcredentials, for comparison).
	Grant string `json:"grant,omitempty"`
}

// The grants of Spec.Grant.
const (
	GrantRefresh           = ""
	GrantClientCredentials = "client_credentials"
	GrantXOAuth2           = "x/oauth2 clientcredentials"
)

func (s Spec) header() string {
	if s.Header == "" {
		return WorkerHeader
	}
	return s.Header
}

// Report is what a worker did, as it prints it at the end.
type Report struct {
	Requests int64  `json:"requests"`
	Failures int64  `json:"failures"`
	Reauth   int64  `json:"reauth"` // failures that were ErrReauthRequired
	FirstErr string `json:"first_err,omitempty"`

	// Saved is the outcome of the paused save (Spec.PauseSave): "ok",
	// "conflict" (it wrapped refresh.ErrConflict) or "error: …"; empty if
	// it did not return. AfterSave counts the requests that ended after
	// it returned, FailedAfterSave those of them that failed.
	Saved           string `json:"saved,omitempty"`
	AfterSave       int64  `json:"after_save"`
	FailedAfterSave int64  `json:"failed_after_save"`

	// Served counts the API's 200s by fingerprint of the access token.
	Served map[string]int64 `json:"served"`
	// StoreEvents counts what the store reported to the engine
	// (refresh.EventStore), by "<op>: <what>".
	StoreEvents map[string]int64 `json:"store_events"`
	// Flights counts the engine's other events: refresh flights and
	// adoptions by "<kind> <trigger> → <outcome>" ("refresh due →
	// refreshed"), resends and pauses by kind.
	Flights map[string]int64 `json:"flights"`
}

// FromEnv returns the Spec of this process if it was started as a worker.
func FromEnv() (Spec, bool) {
	v, ok := os.LookupEnv(Env)
	if !ok {
		return Spec{}, false
	}
	var s Spec
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		fmt.Fprintf(os.Stderr, "procs: bad %s: %v\n", Env, err)
		os.Exit(2)
	}
	return s, true
}

// RunPattern returns the -test.run pattern that selects exactly the test
// (or subtest) called name, as testing.T.Name returns it: each part
// between slashes quoted and anchored.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}
