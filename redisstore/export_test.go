package redisstore

import "golang.org/x/oauth2"

// PauseRenewal makes the lease renewals of s skip their turns while paused
// is true, so that a test can let a held lease expire as it would in a
// paused process.
func PauseRenewal(s *Store, paused bool) { s.renewPaused.Store(paused) }

// TokenKey and LockKey return the Redis keys of key's token and lock.
func TokenKey(s *Store, key string) string { return s.tokenKey(key) }
func LockKey(s *Store, key string) string  { return s.lockKey(key) }

// FromHash returns what Load returns for key when its Redis hash holds the
// fields m, without Redis.
func FromHash(s *Store, key string, m map[string]string) (*oauth2.Token, error) {
	return fromHash(s.tokenKey(key), key, m)
}

// Hash returns the fields that Save stores for key's token.
func Hash(key string, tok *oauth2.Token) (map[string]string, error) {
	data, extra, err := encode(key, tok)
	if err != nil {
		return nil, err
	}
	m := map[string]string{fieldJSON: string(data), fieldCAS: fingerprint(tok)}
	if extra != "" {
		m[fieldExtra] = extra
	}
	return m, nil
}
