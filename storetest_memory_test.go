package refresh_test

import (
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/storetest"
)

// TestMemoryStoreConformance runs the store conformance kit against
// MemoryStore.
func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) refresh.TokenStore { return new(refresh.MemoryStore) })
}
