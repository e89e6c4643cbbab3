// Package pgstore is a [refresh.TokenStore] that keeps tokens in a
// PostgreSQL table, shared by every process and host that connects to the
// database. It is a [refresh.Locker], so that of all those processes only
// one refreshes a key at a time and the others adopt its token (and a
// [refresh.TryLocker], whose lock is taken only if free), and a
// [refresh.CompareAndSwapper], so that a process that lost its lock can
// never overwrite a newer token. It is a [refresh.Deleter] too: Delete
// removes the key's row.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	…
//	opts := pgstore.Options{Schema: "myapp"}
//	if err := pgstore.Migrate(ctx, pool, opts); err != nil { // once, or at every start
//		…
//	}
//	store, err := pgstore.New(pool, opts)
//	…
//	eng, err := refresh.New(refresh.Config{OAuth2: conf, Store: store})
//
// It uses [github.com/jackc/pgx/v5]; the package is its own Go module, so
// programs that do not use it do not depend on pgx.
//
// # The table
//
// [Migrate] creates it, and nothing else does: [New] does not touch the
// database, and until the table exists every operation fails with an error
// wrapping [ErrNoTable]. Run Migrate at deployment or at start-up; it is
// idempotent. The table, "refresh_tokens" unless [Options] name another, is:
//
//	CREATE TABLE IF NOT EXISTS refresh_tokens (
//		key           text COLLATE "C" PRIMARY KEY,
//		access_token  text COLLATE "C" NOT NULL,
//		token_type    text NOT NULL,
//		refresh_token text COLLATE "C" NOT NULL,
//		expiry        timestamptz NULL,
//		expires_in    bigint NOT NULL,
//		version       bigint NOT NULL,
//		updated_at    timestamptz NOT NULL DEFAULT now(),
//		extra         text NULL
//	)
//
// One row per key. Empty token fields are stored as empty strings, a zero
// Expiry as NULL; Expiry keeps microseconds (PostgreSQL's precision). An
// expiry the store never writes, infinity, -infinity or the zero time
// (which would read as "never expires"), makes Load fail rather than guess.
// version starts at 1 and is incremented
// by every write, updated_at set to the time of the write: both are for
// people looking at the table, the store does not read them. The "C"
// collation makes keys and tokens compare byte by byte, whatever the
// database's collation. Keys and tokens must be valid UTF-8 without NUL
// bytes (a PostgreSQL text value cannot hold others); any other is refused
// with an error that says which field is at fault, before anything is
// sent, never stored under another key.
//
// The extra column holds the token's extras (oauth2.Token.Extra: id_token,
// scope and the like, the JSON scalars the engine keeps), NULL if it has
// none:
//
//	{"version":1,"tokens":[{"for":"<fingerprint>","extra":{"id_token":"…","scope":"…"}}]}
//
// It came after the other columns. Migrate adds it to a table that lacks
// it (ALTER TABLE … ADD COLUMN, which needs the table's owner, only then;
// a nullable column without a default rewrites no row), so run Migrate
// before this release's stores use a table made by an earlier one: until
// then they fail with an error saying so. Rows written before read with no
// extras. The earlier release names its columns, so it goes on reading and
// writing the table during a rolling deploy or after a rollback; a row it
// updates keeps the extra column it had, and the fingerprint of the token
// in each entry (a SHA-256 of the key and the access and refresh tokens)
// keeps those extras from being taken for the new token's. An extra column
// that cannot be decoded makes Load fail.
//
// Migrate also checks an existing table, made by hand or by another
// program, and refuses one that would break a promise of the store, with
// an error wrapping [ErrBadTable] that names each column at fault, what it
// is and what the store needs:
//
//   - key, access_token, token_type and refresh_token are text, or varchar
//     without a length (text by another name): char(n) ignores trailing
//     spaces and varchar(n) cuts them, so "alice " would find or overwrite
//     the row of "alice".
//   - key, access_token and refresh_token, and every unique index on key,
//     have deterministic collations: a nondeterministic one (an ICU
//     collation made case-insensitive) makes "Alice" equal "alice", and
//     would let a compare-and-swap match a token that differs in case. A
//     deterministic collation compares for equality byte by byte, whichever
//     it is; "C" is the fastest.
//   - expiry and updated_at are timestamptz without a precision: timestamp
//     without time zone stores the writer's wall-clock time, so an expiry
//     saved by a process at UTC+3 reads back 3 hours late and an expired
//     token looks valid; timestamptz(0) rounds an expiry up.
//   - expires_in and version are bigint; extra is text, or varchar without
//     a length, and allows NULL.
//   - access_token, token_type, refresh_token and expires_in are NOT NULL;
//     expiry allows NULL.
//   - key has a valid, non-deferrable unique index of its own (the primary
//     key), as INSERT … ON CONFLICT needs.
//   - it is a table (possibly partitioned), not a view.
//
// Other columns, defaults and constraints are the owner's. Triggers and
// rules are not checked: one that rewrites a key or a token is the owner's
// doing. Migrate checks the table when it runs, not later: run it again
// after altering the table. Load also compares the key of the row it read
// with the key it was asked for, byte for byte, and returns an error
// wrapping ErrBadTable, never the token, if they differ.
//
// Tokens are stored in the clear: anyone who can read the table, its
// backups or its replicas can use them. Wrap the store with
// [github.com/oauthkit/refresh/sealed] to encrypt them; its Lock,
// CompareAndSwap and Delete are this store's.
//
// # Writes
//
// Save is one upsert (INSERT … ON CONFLICT (key) DO UPDATE). CompareAndSwap
// is one statement too: an INSERT … ON CONFLICT DO NOTHING when nothing is
// expected, else an UPDATE … WHERE key = $1 AND access_token = $old AND
// refresh_token = $old, and no row written means [refresh.ErrConflict].
// PostgreSQL re-checks the UPDATE's WHERE against a row another
// transaction changed meanwhile, so of concurrent swaps from one token
// exactly one wins, without explicit transactions or locks. Delete is one
// DELETE … WHERE key = $1; a swap that waited for it finds no row.
//
// # Locks
//
// [Store.Lock] takes a session-level advisory lock, pg_try_advisory_lock,
// whose 64-bit id is a hash of the table's schema and name and of the key.
// The alternative, a transaction that holds SELECT … FOR UPDATE on the
// key's row, was rejected for two reasons: it needs a row to lock, and the
// first refresh of a key has none; and it would keep a transaction open
// across the call to the token endpoint, which holds back vacuum and, under
// a server's idle_in_transaction_session_timeout, ends the session in the
// middle of the refresh. An advisory lock exists without a row, holds no
// transaction, and dies with its session: if the holding process dies,
// however it dies, the server sees its connection close and releases the
// lock.
//
// Advisory locks belong to a session, that is to one connection, and a pool
// hands out a different connection for each statement. So Lock takes a
// connection out of the pool and keeps it there, unused, until unlock:
// pg_advisory_unlock must run on the same connection, and the connection
// must not serve anyone else while it holds the lock (a session can take
// an advisory lock it already holds, so a pooled holder would let another
// goroutine "take" the lock too). unlock then returns the connection to
// the pool. If pg_advisory_unlock fails or does not answer within 2
// seconds, unlock closes the connection instead, so that the server ends
// the session and releases the lock; unlock never blocks longer, never
// panics, and may be called more than once.
//
// Consequences for the pool:
//
//   - Each held lock keeps one connection for the time of a refresh, one
//     call to the token endpoint. A Store holds at most MaxConns-1 locks,
//     or attempts to take one, at a time (more wait for a turn), so that
//     holders always leave a connection for their Load and CompareAndSwap;
//     [New] refuses a pool of fewer than 2 connections. A program that
//     refreshes many keys at once should size MaxConns for it.
//   - Lock waits without keeping a connection: it tries
//     pg_try_advisory_lock, and while another session holds the lock,
//     waits for the holder's notification (see "Waking waiters" below)
//     and tries again. A blocking pg_advisory_lock would wake up at once
//     too, but when its context ends, pgx (by default) abandons the
//     connection, and the abandoned server session would go on waiting
//     and take the lock later, for nobody. Each try is a statement of
//     microseconds, and a try whose answer is lost closes its connection.
//   - A Store that has waited for a lock has one more connection, its
//     listener's, outside the pool and its MaxConns (see below).
//   - Advisory locks need real sessions: a pooler between the program and
//     the server must give each client connection one server session
//     (PgBouncer's session pooling, not transaction or statement pooling,
//     where the lock and the unlock would run on different sessions).
//
// [Store.TryLock] is one pg_try_advisory_lock: the lock if it is free, or
// false at once if any session holds it. It never waits, not even for a
// lock slot: with MaxConns-1 locks of the Store held or being taken it
// returns an error.
//
// A lock cannot expire while its holder's session is alive, even if the
// process is stopped. A session can still be ended under a live holder:
// pg_terminate_backend, a server restart, a network failure, or
// idle_session_timeout (a server setting that should be zero, or longer
// than a refresh, for the connections of the store). Another process may
// then lock the key and refresh. The first holder's save is a
// CompareAndSwap against the token it read, which the other refresh
// replaced, so it is refused with [refresh.ErrConflict] and the engine
// adopts the stored token instead of overwriting it.
//
// # Waking waiters
//
// unlock runs SELECT pg_advisory_unlock(id) FROM pg_notify(channel, id):
// the lock is free at once, and the notification goes out when the
// statement commits, an instant later. The channel is the table's:
// "pgstore_" and 32 hex digits of a hash of its schema and name as the
// server resolves them, so that every Store of the table, in any process,
// uses the same one. The payload is the lock id in decimal.
//
// Each Store has a listener: a goroutine, started by the first Lock that
// has to wait, with a connection of its own that runs LISTEN on the
// channel and then waits for notifications, and a table of the Store's
// waiting Locks by lock id. A notification wakes the waiters of its id,
// which try again; a payload that is not a lock id is ignored (anyone
// allowed to connect may notify a channel; the worst they can do is make
// waiters try more often). The listener counts as listening only once a
// probe, a notification it sends through the pool as a holder would,
// came back on its connection. A waiter registers with the listener
// before its try, and relies on a notification only if the listener was
// listening before that try: a notification sent after the try failed
// then reaches it. Whenever the listener starts or stops listening it
// wakes every waiter, as notifications may have been missed.
//
// While the listener listens, a waiter also tries again about once a
// second ([Options.LockPoll] if longer), because some unlocks send no
// notification: a holder whose session ends (its process died, its
// connection broke) releases the lock with the session, and a process
// running a release of pgstore from before notifications unlocks without
// one; their waiters take the lock up to a second later. While the
// listener does not listen (it is connecting, or reconnecting after its
// connection failed, with a pause that grows from 100 ms to 10 s),
// waiters poll as they always did, with pauses growing from 2 ms to
// LockPoll.
//
// The listener's connection is made from the pool's configuration, with
// its BeforeConnect and AfterConnect, but outside the pool: held by the
// listener for good, a pooled connection would be missing for the locks
// and statements MaxConns was sized for. So count one connection more
// than MaxConns per Store whose Locks wait. Every second the listener
// looks whether it has waiters; after 5 s without a notification while
// it has some, it probes again (a connection can die without a word), and
// after 10 s without any it closes its connection and stops, and the next
// wait starts it again. A Store has no Close, as the pool is the
// program's: the listener stops 10 to 20 s after the last wait ended,
// also when the program closed the pool. idle_session_timeout ends the
// listener's session too (it is idle between notifications); the listener
// then connects again.
//
// Behind PgBouncer in transaction or statement pooling mode, LISTEN does
// not work: it registers the server session that ran it, which PgBouncer
// hands to other clients afterwards, so notifications reach whichever
// client has that session, or no one. The listener's probe never comes
// back there, so the listener never counts as listening, connects again
// after each pause, up to every 10 s while Locks wait, and waiters poll
// at LockPoll: a wait never depends on a notification that cannot come.
// Advisory locks do not work in those modes in the first place (see
// above): use session pooling, or connect the store's pool to the server.
//
// # Lost connections
//
// After a server restart, or after the server terminated sessions, the
// pool's idle connections are dead, and pgx only finds out when it next
// uses one. A statement that fails because its connection had died before
// it ran (pgx sent nothing, or the server had said it was ending the
// session: SQLSTATE 57P01, 57P02 or 57P05) is run again on another
// connection, up to one attempt more than the pool has connections (at
// most 17), so that a pool of dead connections is worked through without
// errors reaching the engine.
// Other errors are returned as they are; the engine treats them as
// temporary and tries again later.
//
// # Errors
//
// Load returns [refresh.ErrNotFound] only when the key has no row. Other
// errors name the operation and the table and never contain a token, in
// their message or in any error they wrap. That rules out passing on
// PostgreSQL's and pgx's errors: the detail of a check or not-null
// violation (a constraint the table's owner added, say) holds the whole
// failing row, tokens included; a column of the wrong type puts the value
// into the message ("invalid input syntax for type uuid: …"); a value pgx
// cannot parse is quoted by its scan error. So a failed statement gives an
// [*Error]: the SQLSTATE and the names of the column, constraint or data
// type PostgreSQL gave, in pgstore's own words, wrapping [ErrNoTable] if
// the table or its schema does not exist, the context's error if it ended,
// and the network's error if the connection failed, but nothing of the
// texts of the server or of pgx.
//
// # database/sql
//
// There is no database/sql variant, and for now none is planned: pgx is
// what most Go programs that use PostgreSQL already have, and pgxpool is
// what the lock's rules are written for. The same SQL works with
// database/sql: Lock would take a *sql.Conn with DB.Conn for the lock and
// unlock (the same rule: one session from lock to unlock), and close it
// with Conn.Raw when the unlock fails. Ask if you need it.
package pgstore
