package redisstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/redisstore"
	"github.com/oauthkit/refresh/storetest"
)

// startCluster runs a Redis Cluster of three masters of the test's own,
// without replicas or persistence, each serving a third of the slots, and
// returns their addresses once the cluster is up.
func startCluster(t *testing.T) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("REFRESH_REQUIRE_SERVICES") == "1" {
			t.Fatalf("redis-server not found: %v (REFRESH_REQUIRE_SERVICES=1)", err)
		}
		t.Skipf("redis-server not found (%v); install it to run the cluster tests", err)
	}
	ranges := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	var addrs []string
	for _, r := range ranges {
		addr := startClusterNode(t, bin)
		c := newClient(addr)
		defer c.Close()
		ctx := context.Background()
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", r[0], r[1]).Err(); err != nil {
			t.Fatal(err)
		}
		if len(addrs) > 0 {
			host, port, _ := net.SplitHostPort(addrs[0])
			if err := c.Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
				t.Fatal(err)
			}
		}
		addrs = append(addrs, addr)
	}
	for _, addr := range addrs {
		c := newClient(addr)
		defer c.Close()
		eventually(t, "cluster up at "+addr, func() bool {
			info := c.ClusterInfo(context.Background()).Val()
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		})
	}
	return addrs
}

// startClusterNode runs one cluster-enabled redis-server on a free port,
// killed when the test ends, and returns its address once it answers.
func startClusterNode(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", dir+"/nodes.conf", "--dir", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := newClient(addr)
	defer c.Close()
	eventually(t, "redis-server at "+addr, func() bool { return c.Ping(context.Background()).Err() == nil })
	return addr
}

func newClusterClient(t *testing.T, addrs []string) *redis.ClusterClient {
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: addrs, ContextTimeoutEnabled: true, DialTimeout: time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCluster runs the conformance kit and the wake-up test on a Cluster
// of the test's own.
func TestCluster(t *testing.T) {
	addrs := startCluster(t)
	t.Run("Conformance", func(t *testing.T) {
		c := newClusterClient(t, addrs)
		storetest.Run(t, func(t *testing.T) refresh.TokenStore {
			return storeWith(t, c, "refresh-test:"+randomHex(8)+":", redisstore.Options{})
		})
	})
	t.Run("WakeUp", func(t *testing.T) { testClusterWakeUp(t, addrs) })
}

// testClusterWakeUp: on a Cluster, waiters of keys on every node are woken
// by the release's SPUBLISH, which the lock's slot allows from its script;
// the waiting Store subscribes on one connection per node, and on none
// once no one waits.
func testClusterWakeUp(t *testing.T, addrs []string) {
	hc, wc := newClusterClient(t, addrs), newClusterClient(t, addrs)
	holder := storeWith(t, hc, "refresh:", redisstore.Options{})
	w := storeWith(t, wc, "refresh:", redisstore.Options{})
	redisstore.SetWakeLinger(w, 0)
	const n = 12
	ctx := context.Background()
	nodes := map[string]bool{}
	var unlocks []func()
	var dones []<-chan lockResult
	for i := range n {
		key := fmt.Sprint("cluster-", i)
		node, err := hc.MasterForKey(ctx, redisstore.LockKey(holder, key))
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
		unlocks = append(unlocks, lockWithin(t, holder, key, 5*time.Second, "holder"))
		dones = append(dones, lockAsync(w, ctx, key))
	}
	eventually(t, "every waiter subscribed", func() bool { return redisstore.Wake(w).Live == n })
	if st := redisstore.Wake(w); st.Conns != len(nodes) {
		t.Errorf("waiters on %d nodes have %d pub/sub connections, want one per node", len(nodes), st.Conns)
	}
	releaseInTurn(t, unlocks, dones)
	// Only the first waiter may have found the lock free without a wake-up,
	// trying as its subscription was confirmed, and left before the
	// message came.
	if got := redisstore.Wake(w).Woken; got < n-1 {
		t.Errorf("waiters woken by %d of %d releases, want all (or all but the first)", got, n)
	}
	eventually(t, "the pub/sub connections are closed", func() bool { return redisstore.Wake(w).Conns == 0 })
}
