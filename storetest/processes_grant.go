package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/procs"
	"github.com/oauthkit/refresh/refreshtest"
)

// ccLifetime and ccRun are the client-credentials scenario's token
// lifetime and length. A token is due at half its lifetime (the skew is
// clamped there, and the jitter too).
const (
	ccLifetime = 2 * time.Second
	ccRun      = 8 * time.Second
)

// clientCredentials: see RunProcesses. The processes share one key whose
// tokens come from the client credentials grant and live 2 s: the first
// process to need one fetches it under the key's lock, the others adopt it
// from the store, and as each comes due one process fetches the next while
// the others keep sending the valid one. The token endpoint sees about one
// request per token lifetime, not one per process, and no request fails.
// The same processes through x/oauth2's clientcredentials (a token per
// process, in memory) are run too, for the log, not asserted.
func clientCredentials(t *testing.T, k *kit) {
	n, g := k.opts.Processes, k.opts.Goroutines
	ours := runCC(t, k, procs.GrantClientCredentials, n, g)
	theirs := runCC(t, k, procs.GrantXOAuth2, n, g)
	t.Logf("%d processes × %d goroutines, %v tokens, %v: refresh: %s; x/oauth2 clientcredentials: %s",
		n, g, ccLifetime, ccRun, ours, theirs)
	if ours.failures != 0 {
		t.Errorf("%d of %d requests failed; first error: %s", ours.failures, ours.requests, ours.firstErr)
	}
	// A fetch every half lifetime, one at the start, and one at most in
	// flight as the run ends: per process it would be n times that.
	bound := int(ccRun/(ccLifetime/2)) + 2
	if ours.calls > bound || ours.calls != ours.grants {
		t.Errorf("token requests = %d, grants = %d; want every request a grant, and at most %d for %v of %v tokens",
			ours.calls, ours.grants, bound, ccRun, ccLifetime)
	}
	if ours.tokens < ours.grants-1 {
		t.Errorf("%d tokens served of %d fetched: fetched tokens went unused", ours.tokens, ours.grants)
	}
	if ours.requests < int64(n)*10 {
		t.Errorf("only %d requests: the run proved little", ours.requests)
	}
}

// ccCounts is what one run of the client-credentials scenario counted.
type ccCounts struct {
	requests, failures int64
	firstErr           string
	calls, grants      int
	tokens             int // distinct access tokens the API accepted
}

func (c ccCounts) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d token requests, %d grants, %d tokens served", c.requests, c.failures, c.calls, c.grants, c.tokens)
}

// runCC runs n workers of g goroutines that get their tokens by grant, for
// ccRun, over a new namespace of the store, and counts.
func runCC(t *testing.T, k *kit, grant string, n, g int) ccCounts {
	t.Helper()
	ns := newNamespace(t)
	if _, ok := k.newStore(t, ns).(refresh.Locker); !ok {
		t.Fatalf("the store is not a refresh.Locker")
	}
	srv := newServer(t, refreshtest.Options{Lifetime: ccLifetime})
	var specs []procs.Spec
	for i := range n {
		specs = append(specs, procs.Spec{
			ID: fmt.Sprintf("cc%d", i+1), Name: ns.Name, Dir: ns.Dir, Grant: grant,
			TokenURL: srv.TokenURL, ClientID: refreshtest.DefaultClientID, ClientSecret: refreshtest.DefaultClientSecret,
			Auth: refresh.AuthInBody, APIURL: srv.URL + "/api",
			Goroutines: g, Pace: pace, Duration: ccRun,
		})
	}
	ps := procs.StartAll(t, k.test, specs...)
	reps := procs.Wait(t, ps...)
	var c ccCounts
	served := map[string]bool{}
	for _, rep := range reps {
		c.requests += rep.Requests
		c.failures += rep.Failures
		if c.firstErr == "" {
			c.firstErr = rep.FirstErr
		}
		for fp := range rep.Served {
			served[fp] = true
		}
	}
	st := srv.Stats()
	c.calls, c.grants, c.tokens = st.TokenRequests, st.ClientCredentialsGrants, len(served)
	return c
}
