//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filestore

import (
	"context"
	"fmt"
	"hash/fnv"
)

// writeStripes are the write locks of this process, shared by every Store
// of it: a key's lock is the stripe its file path hashes to. Keys that
// share a stripe only wait for each other a little. Each stripe is a
// channel with room for one token: holding the lock is having put it in.
var writeStripes [64]chan struct{}

func init() {
	for i := range writeStripes {
		writeStripes[i] = make(chan struct{}, 1)
	}
}

// lockWrite takes the write lock of the file path within this process only:
// without flock(2) this package has no lock that other processes would see
// and the kernel would release if the holder died. Save, CompareAndSwap and
// Delete are then atomic with respect to each other in this process; across
// processes each write is still whole (rename is atomic), but the last one
// wins.
func lockWrite(ctx context.Context, path string) (unlock func(), err error) {
	h := fnv.New32a()
	h.Write([]byte(path))
	stripe := writeStripes[h.Sum32()%uint32(len(writeStripes))]
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: lock %s: %w", path, err)
	}
	select {
	case stripe <- struct{}{}:
		return func() { <-stripe }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("filestore: lock %s: %w", path, ctx.Err())
	}
}
