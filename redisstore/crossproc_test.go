package redisstore_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
	"github.com/oauthkit/refresh/storetest"
)

// quietLogger drops the client's log lines (dial failures of the outage
// tests, which the tests expect).
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietLogger{})
	os.Exit(m.Run())
}

// processLease is the lease of the stores TestProcesses starts: short, so
// that a holder stopped past it is overtaken soon.
const processLease = 2 * time.Second

// TestProcesses proves the store with real OS processes that share
// nothing but a key prefix in Redis (see storetest.RunProcesses): a killed
// holder's lease runs out, a holder stopped past its lease is overtaken,
// finds its save refused, and reports the lease lost once.
func TestProcesses(t *testing.T) {
	storetest.RunProcesses(t, func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
		c := testClient(t)
		prefix := "refresh-test:" + ns.Name + ":"
		t.Cleanup(func() { deleteUnder(c, prefix) })
		s, err := redisstore.New(c, redisstore.Options{Prefix: prefix, LockTTL: processLease})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.ProcessOptions{Lease: processLease, ReportsLeaseLost: true})
}
