package redisstore

// PauseRenewal makes the lease renewals of s skip their turns while paused
// is true, so that a test can let a held lease expire as it would in a
// paused process.
func PauseRenewal(s *Store, paused bool) { s.renewPaused.Store(paused) }

// TokenKey and LockKey return the Redis keys of key's token and lock.
func TokenKey(s *Store, key string) string { return s.tokenKey(key) }
func LockKey(s *Store, key string) string  { return s.lockKey(key) }
