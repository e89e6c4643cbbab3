package redisstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// Defaults of [Options].
const (
	DefaultPrefix    = "refresh:"
	DefaultLockTTL   = 15 * time.Second
	DefaultLockRetry = 25 * time.Millisecond

	// minLockTTL keeps the renewal interval (a third of the lease) from
	// turning into a busy loop.
	minLockTTL = 10 * time.Millisecond

	// minLockRetry is the shortest LockRetry, and the shortest pause
	// between two tries of a waiting Lock. Each try is a script run by
	// Redis, a round trip of a tenth of a millisecond on a local network:
	// below a millisecond a waiter would send commands as fast as Redis
	// answers, turning a wait into a busy loop of thousands of commands a
	// second, and gain nothing, as a lock is held for a call to the token
	// endpoint, tens of milliseconds at least.
	minLockRetry = time.Millisecond
)

var (
	_ refresh.Locker            = (*Store)(nil)
	_ refresh.TryLocker         = (*Store)(nil)
	_ refresh.CompareAndSwapper = (*Store)(nil)
	_ refresh.Deleter           = (*Store)(nil)
)

// Options configure a [Store]. Every field is optional.
type Options struct {
	// Prefix starts the name of every Redis key the store uses, so that
	// several applications, or several stores of one, can share a
	// database. Optional: "" means DefaultPrefix ("refresh:"). It must not
	// contain "{" or "}", which would change the keys' Cluster hash tag
	// (see the package documentation). Stores that share tokens must use
	// the same prefix.
	Prefix string

	// LockTTL is the lease of a lock taken by [Store.Lock]: a holder that
	// dies, or loses Redis, keeps others from refreshing for at most this
	// long. While the holder runs, the lease is renewed every LockTTL/3.
	// Optional: zero means DefaultLockTTL (15 s); it must be at least
	// 10 ms. It should exceed the longest pause you expect of a holder
	// (a stop-the-world pause, a frozen VM); a shorter one costs nothing
	// in safety, as saves under the lock are compare-and-swaps, but may
	// cost a refresh.
	LockTTL time.Duration

	// LockRetry is about how often a Lock that waits behind another
	// holder tries again while it is not subscribed to the release of
	// the lock (until the subscription is confirmed, or always where
	// there is no pub/sub: see the package documentation): the pause
	// starts at a few milliseconds and grows to LockRetry, with random
	// jitter so that waiters spread out. A Lock that is subscribed tries
	// when the release is announced, when the holder's lease is due to
	// expire, and every half second or so (or LockRetry, if longer) in
	// case an announcement was lost. Optional: zero means
	// DefaultLockRetry (25 ms).
	//
	// It must be at least 1 ms, and no pause is shorter: each try is a
	// round trip to Redis, and shorter pauses would turn a wait into a
	// busy loop of commands. [New] refuses a shorter LockRetry, or a
	// negative one, rather than round it up: it is most likely a number
	// without its unit (LockRetry: 25 is 25 ns).
	LockRetry time.Duration

	// LeaseLost, if set, is called when the store finds that a lease of
	// this process expired while it was held (its renewal or its release
	// found the lock gone or taken by another), at most once per Lock. The
	// holder's save is still fenced by CompareAndSwap; the hook is for
	// logging and metrics. It runs on a goroutine of the store and must
	// return quickly. Optional.
	LeaseLost func(key string)
}

// Store is a [refresh.TokenStore] that keeps tokens in Redis. It also
// implements [refresh.Locker] and [refresh.TryLocker], with leases that
// expire when their holder dies, [refresh.CompareAndSwapper] and
// [refresh.Deleter]. See the package documentation for the key layout and
// the guarantees.
//
// A Store is safe for concurrent use, and any number of processes may use
// Stores with the same prefix over the same Redis at the same time.
type Store struct {
	client    redis.UniversalClient // shared with the caller; never closed by the store
	prefix    string                // start of every key name
	ttl       time.Duration         // lease of a lock
	retry     time.Duration         // longest pause between two polls of a waiting Lock; at least minLockRetry
	leaseLost func(key string)      // Options.LeaseLost; may be nil

	wakes wakeHub // the waiting Locks and their pub/sub connections

	// renewPaused makes lease renewals skip their turn, so that tests can
	// let a held lease expire as in a paused process; dropPublish makes
	// releases announce nothing, as if the wake-up were lost. Set only by
	// tests.
	renewPaused, dropPublish atomic.Bool
}

// New returns a Store over client, which the caller keeps owning (the store
// never closes it). client may be a *redis.Client, a *redis.ClusterClient,
// a failover client or a *redis.Ring: anything that runs Lua scripts.
//
// Set ContextTimeoutEnabled in the client's options, so that the deadline
// of the context given to each call bounds the call even when Redis stops
// answering; otherwise the client's ReadTimeout and WriteTimeout do.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redisstore: nil Redis client")
	}
	s := &Store{
		client:    client,
		prefix:    opts.Prefix,
		ttl:       opts.LockTTL,
		retry:     opts.LockRetry,
		leaseLost: opts.LeaseLost,
		wakes:     wakeHub{client: client, linger: wakeLinger},
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if strings.ContainsAny(s.prefix, "{}") {
		return nil, fmt.Errorf("redisstore: prefix %q contains \"{\" or \"}\"", s.prefix)
	}
	switch {
	case s.ttl == 0:
		s.ttl = DefaultLockTTL
	case s.ttl < minLockTTL:
		return nil, fmt.Errorf("redisstore: LockTTL %v is shorter than %v", s.ttl, minLockTTL)
	}
	switch {
	case s.retry == 0:
		s.retry = DefaultLockRetry
	case s.retry < 0:
		return nil, fmt.Errorf("redisstore: negative LockRetry %v", s.retry)
	case s.retry < minLockRetry:
		return nil, fmt.Errorf("redisstore: LockRetry %v is shorter than %v", s.retry, minLockRetry)
	}
	return s, nil
}

// slot returns the part of key's Redis names that both its token and its
// lock share: the prefix and the key's hash in braces, a Redis Cluster hash
// tag, so that both live in one hash slot. The hash is the lowercase hex
// SHA-256 of the key, so any key (empty, 1000 bytes long, with braces,
// spaces or bytes that are not UTF-8) gets a distinct, printable name.
func (s *Store) slot(key string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + "{" + hex.EncodeToString(sum[:]) + "}"
}

// tokenKey is the Redis key of the hash that holds key's token.
func (s *Store) tokenKey(key string) string { return s.slot(key) + ":tok" }

// lockKey is the Redis key of key's lock, a string holding its owner.
func (s *Store) lockKey(key string) string { return s.slot(key) + ":lock" }

// saveScript replaces the token hash whole: whatever held the key (another
// token, a value of another type, one with a TTL) is gone, and the JSON,
// its fingerprint and its extras change together.
//
// KEYS[1]: token key. ARGV[1]: JSON. ARGV[2]: fingerprint. ARGV[3]: extras
// record, or "" for none.
var saveScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'cas', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'extra', ARGV[3]) end
return 1
`)

// casScript stores a token if the stored one has the expected fingerprint
// ("" for no token). It returns 1 if it stored the token, 0 on a conflict,
// -1 if the key holds a value of another type, -2 if the hash lacks its
// fingerprint. It also returns 1, storing nothing, when the key already holds
// exactly this JSON: that is this very call retried by the client after its
// reply was lost, and answering "conflict" would make the caller drop its
// own token.
//
// KEYS[1]: token key. ARGV[1]: expected fingerprint or "". ARGV[2]: new
// JSON. ARGV[3]: new fingerprint. ARGV[4]: new extras record, or "".
var casScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  if ARGV[1] ~= '' then return 0 end
elseif t ~= 'hash' then
  return -1
else
  local cur = redis.call('HMGET', KEYS[1], 'cas', 'json', 'extra')
  if not cur[1] then return -2 end
  if cur[1] == ARGV[3] and cur[2] == ARGV[2] and (cur[3] or '') == ARGV[4] then return 1 end
  if cur[1] ~= ARGV[1] then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'cas', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'extra', ARGV[4]) end
return 1
`)

// Load implements [refresh.TokenStore]. It returns [refresh.ErrNotFound] if
// key has no token, an error wrapping [ErrCorrupt] if its Redis key holds
// something that is not a token of key, and the client's error (wrapped) if
// Redis cannot be reached.
func (s *Store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	rk := s.tokenKey(key)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: load %s: %w", rk, err)
	}
	m, err := s.client.HGetAll(ctx, rk).Result()
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return nil, fmt.Errorf("%w: %s is not a hash", ErrCorrupt, rk)
	case err != nil:
		return nil, fmt.Errorf("redisstore: load %s: %w", rk, err)
	case len(m) == 0: // Redis has no empty hashes: the key does not exist
		return nil, refresh.ErrNotFound
	}
	return fromHash(rk, key, m)
}

// Save implements [refresh.TokenStore]. It replaces key's token in one
// atomic step: another process sees the old token or the new one, never a
// mix. When Save returns nil Redis has applied the write; whether it
// survives a restart of Redis is up to Redis's persistence settings (see
// the package documentation).
func (s *Store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("redisstore: Save: nil token")
	}
	rk := s.tokenKey(key)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: save %s: %w", rk, err)
	}
	data, extra, err := encode(key, tok)
	if err != nil {
		return err
	}
	if err := saveScript.Run(ctx, s.client, []string{rk}, data, fingerprint(tok), extra).Err(); err != nil {
		return fmt.Errorf("redisstore: save %s: %w", rk, err)
	}
	return nil
}

// CompareAndSwap implements [refresh.CompareAndSwapper]: one Lua script
// compares the fingerprint of the stored token with old's and writes new
// only if they match (old nil: only if no token is stored), so the check and
// the write are atomic with respect to every Save and CompareAndSwap of
// every process. A mismatch returns an error wrapping [refresh.ErrConflict];
// a stored value that is not a hash or lacks its fingerprint, an error
// wrapping [ErrCorrupt]; either way nothing is written.
//
// CompareAndSwap does not look at the lock: it is what keeps a holder whose
// lease expired from overwriting a newer token.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("redisstore: CompareAndSwap: nil token")
	}
	rk := s.tokenKey(key)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: compare-and-swap %s: %w", rk, err)
	}
	data, extra, err := encode(key, new)
	if err != nil {
		return err
	}
	want := ""
	if old != nil {
		want = fingerprint(old)
	}
	n, err := casScript.Run(ctx, s.client, []string{rk}, want, data, fingerprint(new), extra).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: compare-and-swap %s: %w", rk, err)
	case n == 1:
		return nil
	case n == 0:
		return fmt.Errorf("redisstore: %s: %w", rk, refresh.ErrConflict)
	case n == -1:
		return fmt.Errorf("%w: %s is not a hash", ErrCorrupt, rk)
	default:
		return fmt.Errorf("%w: %s has no %q field", ErrCorrupt, rk, fieldCAS)
	}
}

// Delete implements [refresh.Deleter] with one DEL of key's token hash,
// which holds the token and its extras together: both go in one step,
// atomic with respect to Save and CompareAndSwap, which are scripts on
// that same Redis key (so a CompareAndSwap after it finds no token, and
// refuses any old one). It is one key, so Cluster has no cross-slot
// command to refuse. Whatever the key holds is deleted, a corrupt value
// too.
//
// The lock is a key of its own and stays: it belongs to its holder until
// it unlocks or its lease ends.
func (s *Store) Delete(ctx context.Context, key string) error {
	rk := s.tokenKey(key)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: delete %s: %w", rk, err)
	}
	if err := s.client.Del(ctx, rk).Err(); err != nil {
		return fmt.Errorf("redisstore: delete %s: %w", rk, err)
	}
	return nil
}
