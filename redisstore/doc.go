// Package redisstore is a [refresh.TokenStore] that keeps tokens in Redis,
// so that processes on any number of hosts share each key's token and
// refresh it once between them.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379", ContextTimeoutEnabled: true})
//	store, err := redisstore.New(rdb, redisstore.Options{})
//	…
//	eng, err := refresh.New(refresh.Config{OAuth2: conf, Store: store})
//
// A [Store] is also a [refresh.Locker] and a [refresh.TryLocker] (leases
// that expire when their holder dies; a waiter is woken by pub/sub when
// the lock is released), a [refresh.CompareAndSwapper] (one Lua
// script) and a [refresh.Deleter] (one DEL of the token's hash, which
// holds its extras too; the lock stays with its holder). It works with a single Redis, Sentinel, Redis Cluster and Ring
// clients, through redis.UniversalClient. It needs Redis 4.0 or newer
// (Lua, SET with NX and PX, HSET of several fields); the tests run against
// Redis 7. Set ContextTimeoutEnabled in the client's options: then the
// deadline of each call's context bounds it even when Redis stops
// answering, not only the client's read and write timeouts.
//
// # Key layout
//
// A key's names are made of [Options.Prefix] (default "refresh:") and the
// lowercase hex SHA-256 of the key, so any key (empty, 1000 bytes long, with
// braces, spaces or bytes that are not UTF-8) gets a distinct, printable
// name:
//
//	<prefix>{<sha256 of key>}:tok   a hash: the token (field "json"), its
//	                                 fingerprint (field "cas") and its
//	                                 extras, if it has any (field "extra")
//	<prefix>{<sha256 of key>}:lock  a string: the lock's owner, with a TTL
//
// The "json" field holds:
//
//	{"version":1,"key":"alice","access_token":"…","token_type":"Bearer",
//	 "refresh_token":"…","expiry":"2031-05-06T07:08:09.123456789Z","expires_in":3600}
//
// "expiry" is RFC 3339 with nanoseconds, in UTC, and is omitted when the
// token has none. The key is stored too (base64-encoded in an extra
// "key_base64" field if it is not valid UTF-8) and checked by Load, so a
// value copied or renamed from another key's is refused rather than handed
// out. The "cas" field is the hex SHA-256 of the access and refresh tokens,
// what [Store.CompareAndSwap] compares; it tells nothing the "json" field
// does not.
//
// The "extra" field holds the token's extras (oauth2.Token.Extra: id_token,
// scope and the like, the JSON scalars the engine keeps):
//
//	{"version":1,"tokens":[{"for":"<fingerprint>","extra":{"id_token":"…","scope":"…"}}]}
//
// They are not in the "json" field because the releases before this one
// refuse a "json" with a member they do not know; those releases read only
// "json", and remove "extra" whenever they write, as every write replaces
// the hash whole. The fingerprint binds the entry to its token all the
// same. An "extra" field that cannot be decoded makes Load fail with
// [ErrCorrupt].
//
// The token has no TTL: a refresh token outlives the access token it came
// with, often by months, and a token that expired in Redis would mean a new
// login. The lock's owner is "host:pid:random", so that whoever looks at a
// lock can see who holds it.
//
// # Redis Cluster
//
// The braces around the hash are a Cluster hash tag: Cluster assigns a key
// to a slot by the text between its first "{" and the next "}", so a key's
// token and its lock live in one slot, on one node, and move and fail over
// together, and so does the lock's channel. Each of the store's Lua
// scripts touches exactly one key, which it is given in KEYS, as Cluster
// requires (the release script also publishes on the lock's channel,
// which has the lock's slot). The prefix must not contain "{"
// or "}" ([New] refuses it): a tag inside the prefix would put every token
// of the store in one slot, and an empty "{}" would disable tags. Keys of
// different token keys are spread over the cluster.
//
// # Errors
//
// Load returns [refresh.ErrNotFound] only when the key has no token. A
// value that is not a token of this format for the key (a string where a
// hash should be, a hash without its fields, JSON that is truncated or of
// the wrong shape, another key's token, a newer format version) gives an
// error wrapping [ErrCorrupt]; Redis that cannot be reached gives the
// client's error, wrapped. Either way the engine does not call the token
// endpoint on a guess. Messages name the Redis key but never contain a
// token. Save replaces whatever the key held.
//
// # Locks and leases
//
// [Store.Lock] sets the key's lock with SET NX PX: only if no one holds it,
// with a random owner value, for [Options.LockTTL] (default 15 s). While
// the lock is held, a timer of the store renews the lease every LockTTL/3
// with a script that extends it only if it still holds the owner. unlock
// stops the renewal and deletes the lock with a script that deletes it
// only if it still holds the owner, so that it never deletes the lock of a
// process that took it after this one's lease expired, and that then
// announces the release on the lock's pub/sub channel; unlock waits at
// most a second for that. An uncontended Lock and unlock are one round
// trip each. [Store.TryLock] is one try of Lock: it never waits.
//
// # Waiting for a lock
//
// A Lock that finds the lock held subscribes to the lock's channel,
// named after the lock's key:
//
//	<prefix>{<sha256 of key>}:lock:free   announces that the lock was released
//
// and tries again when a release is announced (of the waiters that hear
// it, one gets the lock and the others wait on), so that it gets the lock
// within about a round trip of its release. The waiters of a Store share
// one pub/sub connection (with a Cluster client, one per master node, with
// sharded pub/sub: SSUBSCRIBE, and SPUBLISH in the release script, which
// Redis 7.0 introduced), each channel subscribed once while it has
// waiters. The store opens the connection at the first wait and closes it
// when no Lock has waited for ten seconds; a Store has nothing to close.
//
// Pub/sub delivers at most once: a connection that drops loses the
// announcements of the meantime (go-redis reconnects and subscribes
// again, and the store then has every waiter try once), and a holder that
// dies announces nothing. So a subscribed waiter also tries when the
// holder's lease is due to expire (the lock script tells the lease's PTTL)
// and, failing all else, every half second or so. Until its subscription
// is confirmed, and where there is no pub/sub at all, a waiter polls as
// the store always did: after a pause that starts at a few milliseconds
// and grows to [Options.LockRetry] (default 25 ms, at least 1 ms), with
// jitter, until it gets the lock or its context ends. That is the case
// with a Ring client (the store cannot tell which shard serves a channel),
// with a client type of another package, with a proxy that lacks pub/sub
// or a Redis user without access to the channels, with a Cluster before
// Redis 7.0 (no sharded pub/sub), and on a Cluster for the waiters of a
// slot that moves to another node while they wait (Redis ends their
// subscription); releases work the same there (the script ignores a
// failed announcement). A release by a process of an earlier version of
// this package announces nothing either: while versions are mixed, the
// waiters of its locks get them by their fallback tries, within a second
// (with a LockRetry under half a second).
// A waiter's context ends its wait at once, whichever way it waits, and it
// leaves no subscription behind.
//
// If the holder dies, is cut off from Redis, or fails to release, its lease
// expires by itself within LockTTL, and the next process takes the lock.
// If Redis itself restarts without persistence, or fails over to a replica
// that had not received the lock yet, the lock is gone at once.
//
// # Fencing
//
// A lease can expire while its holder still runs: a process paused (a
// stop-the-world pause, SIGSTOP, a frozen VM) for longer than LockTTL stops
// renewing, and another process takes the lock. When the paused one
// resumes, it still believes it holds the lock. This is why the engine
// saves under the lock with [Store.CompareAndSwap]: the script compares the
// stored token with the one the holder read after locking, and refuses the
// write if another process saved since. The holder then gets
// [refresh.ErrConflict] and the engine adopts the stored, newer token; the
// lock is not what protects the token, the compare-and-swap is.
// [Options.LeaseLost] reports such a loss, for logs and metrics.
//
// Fencing protects the store, not the authorization server: a holder paused
// after it read the store and before it called the token endpoint may still
// send a refresh token that another process has meanwhile rotated, and a
// server with single-use refresh tokens then revokes the token family; and
// one paused after the server rotated, before it saved, leaves a spent
// refresh token in the store, as a crash there would. Choose a LockTTL
// longer than the pauses you expect; renewal keeps a long lease from
// delaying anyone while its holder is alive.
//
// # Durability
//
// Save and CompareAndSwap return nil once Redis has applied the write in
// memory. Whether it survives a restart of Redis is decided by Redis's
// persistence settings: with appendonly yes and appendfsync always it is
// on disk; with everysec, up to about a second of writes can be lost in a
// crash; with RDB snapshots only, everything since the last snapshot; with
// neither, everything. Replication is asynchronous, so a failover can lose
// the newest writes too. A lost write of a rotated token means the user must
// log in again; use AOF for tokens you cannot afford to lose.
package redisstore
