//go:build unix

package filestore_test

import (
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/storetest"
)

// TestProcesses proves the store with real OS processes sharing one
// directory (see storetest.RunProcesses): its flock is held by a stopped
// process and released by the kernel when one dies.
func TestProcesses(t *testing.T) {
	storetest.RunProcesses(t, func(t *testing.T, ns storetest.Namespace) refresh.TokenStore {
		s, err := filestore.New(ns.Dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, storetest.ProcessOptions{})
}
