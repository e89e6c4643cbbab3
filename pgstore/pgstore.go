package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/tokenjson"
)

// DefaultTable is the table name used when [Options.Table] is empty.
const DefaultTable = "refresh_tokens"

// ErrNoTable is wrapped by the errors of a store whose table (or schema)
// does not exist: [Migrate] has not been run for it.
var ErrNoTable = errors.New("table not found; create it with pgstore.Migrate")

var (
	_ refresh.Locker            = (*Store)(nil)
	_ refresh.TryLocker         = (*Store)(nil)
	_ refresh.CompareAndSwapper = (*Store)(nil)
	_ refresh.Deleter           = (*Store)(nil)
)

// Options configure a [Store] and [Migrate]. The zero value is the table
// "refresh_tokens" found through the connections' search_path.
type Options struct {
	// Schema is the schema of the table. Optional: empty means the table
	// is not qualified and is found through the search_path of the pool's
	// connections.
	Schema string

	// Table is the name of the table. Optional: empty means
	// [DefaultTable].
	//
	// Schema and Table are used as quoted identifiers, exactly as given:
	// "Tokens" and "tokens" are different tables. Each must be valid
	// UTF-8, without NUL bytes, and at most 63 bytes long (PostgreSQL
	// would silently truncate a longer name).
	Table string

	// LockPoll is the longest pause between two attempts to take a lock
	// that another session holds (see [Store.Lock]) while the Store's
	// listener does not listen for the holder's notification (it is
	// starting, reconnecting, or cannot hear notifications at all).
	// Optional: zero means 50 ms. Waiting then starts with shorter
	// pauses, so a lock released quickly is taken quickly. While the
	// listener listens, the unlock's notification wakes a waiter at once,
	// and it tries again only once a second (or once per LockPoll, if
	// longer) on its own.
	//
	// It must be at least 1 ms, and no pause is shorter: each attempt is
	// a round trip to the server, and shorter pauses would turn a wait
	// into a busy loop of queries. [New] refuses a shorter LockPoll, or a
	// negative one, rather than round it up: it is most likely a number
	// without its unit (LockPoll: 50 is 50 ns).
	LockPoll time.Duration
}

// minLockPoll is the shortest [Options.LockPoll], and the shortest pause
// between two attempts of a waiting Lock. Each attempt is a statement and
// a round trip to the server, a tenth of a millisecond on a local network:
// below a millisecond a waiter would poll the server as fast as it
// answers, turning a wait into a busy loop of thousands of queries a
// second, and gain nothing, as a lock is held for a call to the token
// endpoint, tens of milliseconds at least.
const minLockPoll = time.Millisecond

func (o *Options) table() string {
	if o.Table == "" {
		return DefaultTable
	}
	return o.Table
}

func (o *Options) lockPoll() (time.Duration, error) {
	switch {
	case o.LockPoll == 0:
		return 50 * time.Millisecond, nil
	case o.LockPoll < minLockPoll:
		return 0, fmt.Errorf("pgstore: LockPoll %v is shorter than %v", o.LockPoll, minLockPoll)
	}
	return o.LockPoll, nil
}

// ident returns the quoted, possibly schema-qualified name of the table, or
// an error if a name cannot be one.
func (o *Options) ident() (string, error) {
	names := pgx.Identifier{o.table()}
	if o.Schema != "" {
		names = pgx.Identifier{o.Schema, o.table()}
	}
	for _, n := range names {
		switch {
		case len(n) > 63:
			return "", fmt.Errorf("pgstore: name %q is longer than 63 bytes", n)
		case !utf8.ValidString(n):
			return "", fmt.Errorf("pgstore: name %q is not valid UTF-8", n)
		case containsNUL(n):
			return "", fmt.Errorf("pgstore: name %q contains a NUL byte", n)
		}
	}
	return names.Sanitize(), nil
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Store is a [refresh.TokenStore] that keeps tokens in a PostgreSQL table,
// one row per key. It implements [refresh.Locker] with session-level
// advisory locks, [refresh.CompareAndSwapper] with a conditional UPDATE and
// [refresh.Deleter] with a DELETE of the row.
// See the package documentation.
//
// A Store is safe for concurrent use, and any number of processes may use
// Stores over the same table at the same time.
type Store struct {
	pool  *pgxpool.Pool
	ident string        // quoted, possibly qualified table name; never changes
	poll  time.Duration // longest pause between lock attempts; at least minLockPoll
	tries int           // attempts of a statement whose connection died (see retry)

	// slots bounds the connections held by locks of this Store, so that
	// holders always leave one for their own Load and CompareAndSwap.
	slots chan struct{}

	// The SQL of each operation, built once.
	loadSQL, saveSQL, insertSQL, updateSQL, deleteSQL string

	silent atomic.Bool // tests: unlock sends no notification

	mu         sync.Mutex    // protects the fields below
	lockNS     string        // "schema\x00table" as resolved by the server; "" until known
	lis        *listener     // made on the first wait for a lock
	listenIdle time.Duration // the listener stops after this long without waiters
	deaf       bool          // tests: the listener hears no notification
}

// New returns a Store that keeps tokens in the table named by opts, using
// connections of pool. It does not connect to the database and does not
// create the table: run [Migrate] once (at deployment, or at start-up)
// before using the store. Until then every operation fails with an error
// wrapping [ErrNoTable].
//
// The pool must allow at least 2 connections (pgxpool's MaxConns): while a
// key is locked, its lock holds one connection (see [Store.Lock]).
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("pgstore: nil pool")
	}
	ident, err := opts.ident()
	if err != nil {
		return nil, err
	}
	poll, err := opts.lockPoll()
	if err != nil {
		return nil, err
	}
	maxConns := int(pool.Config().MaxConns)
	if maxConns < 2 {
		return nil, fmt.Errorf("pgstore: the pool allows %d connection(s), need at least 2: a held lock keeps one", maxConns)
	}
	cols := "access_token, token_type, refresh_token, expiry, expires_in, extra"
	return &Store{
		pool:  pool,
		ident: ident,
		poll:  poll,
		tries: min(maxConns, 16) + 1,
		slots: make(chan struct{}, maxConns-1),

		listenIdle: listenIdle,

		loadSQL: "SELECT key, " + cols + " FROM " + ident + " WHERE key = $1",
		saveSQL: "INSERT INTO " + ident + " AS t (key, " + cols + ", version, updated_at)" +
			" VALUES ($1, $2, $3, $4, $5, $6, $7, 1, now())" +
			" ON CONFLICT (key) DO UPDATE SET access_token = EXCLUDED.access_token," +
			" token_type = EXCLUDED.token_type, refresh_token = EXCLUDED.refresh_token," +
			" expiry = EXCLUDED.expiry, expires_in = EXCLUDED.expires_in, extra = EXCLUDED.extra," +
			" version = t.version + 1, updated_at = now()",
		insertSQL: "INSERT INTO " + ident + " (key, " + cols + ", version, updated_at)" +
			" VALUES ($1, $2, $3, $4, $5, $6, $7, 1, now())" +
			" ON CONFLICT (key) DO NOTHING",
		updateSQL: "UPDATE " + ident + " SET access_token = $2, token_type = $3, refresh_token = $4," +
			" expiry = $5, expires_in = $6, extra = $7, version = version + 1, updated_at = now()" +
			" WHERE key = $1 AND access_token = $8 AND refresh_token = $9",
		deleteSQL: "DELETE FROM " + ident + " WHERE key = $1",
	}, nil
}

// Table returns the quoted, possibly schema-qualified name of the store's
// table, as used in its SQL.
func (s *Store) Table() string { return s.ident }

// Load implements [refresh.TokenStore]. It returns [refresh.ErrNotFound]
// if the table has no row for key, and an error wrapping [ErrBadTable] if
// the row it found holds another key (which only a table that [Migrate]
// refuses can do).
func (s *Store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if err := checkText("load", s.ident, key, nil, nil); err != nil {
		return nil, err
	}
	var r row
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, s.loadSQL, key).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, refresh.ErrNotFound
	}
	if err != nil {
		return nil, newError(ctx, "load", s.ident, err)
	}
	return r.token(s.ident, key)
}

// Save implements [refresh.TokenStore]. It inserts or replaces the row of
// key in one statement and increments its version. When Save returns nil
// the transaction has committed.
func (s *Store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return errors.New("pgstore: Save: nil token")
	}
	if err := checkText("save", s.ident, key, tok, nil); err != nil {
		return err
	}
	a, err := args(key, tok)
	if err != nil {
		return err
	}
	err = s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, s.saveSQL, a...)
		return err
	})
	if err != nil {
		return newError(ctx, "save", s.ident, err)
	}
	return nil
}

// CompareAndSwap implements [refresh.CompareAndSwapper] with one statement:
// for old == nil an INSERT that does nothing if the key has a row, else an
// UPDATE of the row whose access and refresh tokens are old's. If no row
// was written it returns an error wrapping [refresh.ErrConflict].
//
// PostgreSQL re-checks the UPDATE's condition against a row another
// transaction changed meanwhile, so of concurrent swaps from the same old
// token exactly one succeeds.
func (s *Store) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	if new == nil {
		return errors.New("pgstore: CompareAndSwap: nil token")
	}
	if err := checkText("compare-and-swap", s.ident, key, new, old); err != nil {
		return err
	}
	a, err := args(key, new)
	if err != nil {
		return err
	}
	var tag pgconn.CommandTag
	err = s.retry(ctx, func() error {
		var err error
		if old == nil {
			tag, err = s.pool.Exec(ctx, s.insertSQL, a...)
		} else {
			tag, err = s.pool.Exec(ctx, s.updateSQL, append(a, old.AccessToken, old.RefreshToken)...)
		}
		return err
	})
	if err != nil {
		return newError(ctx, "compare-and-swap", s.ident, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: compare-and-swap in %s: %w", s.ident, refresh.ErrConflict)
	}
	return nil
}

// checkText returns an error naming the first of key and the text fields
// of tok and old (either may be nil) whose value a PostgreSQL text column
// cannot hold (not valid UTF-8, or with a NUL byte), before anything is
// sent: the server would refuse it with a message that quotes its bytes.
func checkText(op, table, key string, tok, old *oauth2.Token) error {
	type field struct{ name, v string }
	fields := []field{{"key", key}}
	for _, t := range []struct {
		what string
		tok  *oauth2.Token
	}{{"", tok}, {"expected ", old}} {
		if t.tok != nil {
			fields = append(fields, field{t.what + "access token", t.tok.AccessToken},
				field{t.what + "token type", t.tok.TokenType}, field{t.what + "refresh token", t.tok.RefreshToken})
		}
	}
	for _, f := range fields {
		switch {
		case !utf8.ValidString(f.v):
			return fmt.Errorf("pgstore: %s in %s: the %s is not valid UTF-8", op, table, f.name)
		case containsNUL(f.v):
			return fmt.Errorf("pgstore: %s in %s: the %s contains a NUL byte", op, table, f.name)
		}
	}
	return nil
}

// args returns the parameters $1…$7 of the write statements: the key and
// the token's columns, its extras as a tokenjson extras record (see row.go)
// or NULL if it has none.
func args(key string, tok *oauth2.Token) ([]any, error) {
	var expiry *time.Time // NULL: no expiry
	if !tok.Expiry.IsZero() {
		expiry = &tok.Expiry
	}
	var extra *string // NULL: no extras
	rec, err := tokenjson.EncodeExtra(key, tok, nil)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if rec != nil {
		s := string(rec) // JSON: valid UTF-8, NUL escaped, as a text column needs
		extra = &s
	}
	return []any{key, tok.AccessToken, tok.TokenType, tok.RefreshToken, expiry, tok.ExpiresIn, extra}, nil
}

// retry runs a statement again when it failed because its pooled
// connection had died before the statement ran (the server restarted or
// terminated the session while it was idle in the pool): pgx only notices
// when it next uses the connection, and then discards it. Each attempt
// uses up one dead connection, so a whole pool of them is worked through
// within a few attempts (bounded by the pool size). Errors that may have
// happened after the statement ran are returned as they are.
func (s *Store) retry(ctx context.Context, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || attempt >= s.tries || ctx.Err() != nil || !diedBefore(err) {
			return err
		}
	}
}

// diedBefore reports whether err shows that the connection was dead before
// the statement was executed.
func diedBefore(err error) bool {
	if pgconn.SafeToRetry(err) {
		return true // pgx sent nothing
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "57P01", // admin_shutdown: pg_terminate_backend, or a fast shutdown
			"57P02", // crash_shutdown
			"57P05": // idle_session_timeout
			// The server sends these to a session it ends; an idle
			// session's next statement reads it instead of running.
			return true
		}
	}
	return false
}
