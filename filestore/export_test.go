package filestore

import "context"

// SyncDir is syncDir, for the test of what it opens.
var SyncDir = syncDir

// LockWrite takes key's write lock, the one Save, CompareAndSwap and
// Delete hold.
func (s *Store) LockWrite(ctx context.Context, key string) (unlock func(), err error) {
	return lockWrite(ctx, s.path(key, wlockExt))
}
