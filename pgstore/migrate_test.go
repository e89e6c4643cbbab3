package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/pgstore"
)

// TestNoTableWithoutMigrate: New creates nothing, and until Migrate runs
// every operation fails with an error that says to run it.
func TestNoTableWithoutMigrate(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	for _, opts := range []pgstore.Options{
		{Schema: schema},
		{Schema: schema + "_missing"}, // the schema does not exist either
	} {
		s, err := pgstore.New(pool, opts)
		if err != nil {
			t.Fatalf("New(%+v): %v", opts, err)
		}
		tok := &oauth2.Token{AccessToken: "at-secret-1", RefreshToken: "rt-secret-1"}
		_, lerr := s.Load(ctx, "k")
		_, lockErr := s.Lock(ctx, "k")
		for op, err := range map[string]error{
			"Load":           lerr,
			"Save":           s.Save(ctx, "k", tok),
			"CompareAndSwap": s.CompareAndSwap(ctx, "k", nil, tok),
			"Lock":           lockErr,
		} {
			if !errors.Is(err, pgstore.ErrNoTable) || !strings.Contains(err.Error(), "pgstore.Migrate") {
				t.Errorf("%s on %s without Migrate: got %v, want an error wrapping ErrNoTable that mentions pgstore.Migrate", op, s.Table(), err)
			}
			if err != nil && (errors.Is(err, refresh.ErrNotFound) || strings.Contains(err.Error(), "secret")) {
				t.Errorf("%s: %q is ErrNotFound or holds a token", op, err)
			}
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1", schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("tables in %s after New and failed calls: %d (%v), want 0", schema, n, err)
	}
}

// TestMigrateIdempotent: Migrate creates the table once; running it again,
// or from several goroutines at once, changes nothing and fails nothing.
// Every write increments the row's version.
func TestMigrateIdempotent(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t, maxConns(8))
	ctx := ctx5s(t)
	opts := pgstore.Options{Schema: schema, Table: "tokens"}
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = pgstore.Migrate(ctx, pool, opts) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent Migrate %d: %v", i, err)
		}
	}
	s := migrated(t, pool, opts) // a second (seventh) time, on an existing table
	if _, err := s.Load(ctx, "k"); !errors.Is(err, refresh.ErrNotFound) {
		t.Fatalf("Load after Migrate: %v, want ErrNotFound", err)
	}

	version := func() (v int64) {
		t.Helper()
		if err := pool.QueryRow(ctx, "SELECT version FROM "+s.Table()+" WHERE key = 'k'").Scan(&v); err != nil {
			t.Fatalf("version: %v", err)
		}
		return v
	}
	t1 := &oauth2.Token{AccessToken: "a1", RefreshToken: "r1"}
	t2 := &oauth2.Token{AccessToken: "a2", RefreshToken: "r2", Expiry: time.Now().Add(time.Hour)}
	if err := s.CompareAndSwap(ctx, "k", nil, t1); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 1 {
		t.Errorf("version after create = %d, want 1", v)
	}
	if err := s.Save(ctx, "k", t2); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 2 {
		t.Errorf("version after Save = %d, want 2", v)
	}
	if err := s.CompareAndSwap(ctx, "k", t2, t1); err != nil {
		t.Fatal(err)
	}
	if err := s.CompareAndSwap(ctx, "k", t2, t1); !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("stale CompareAndSwap: %v, want ErrConflict", err)
	}
	if v := version(); v != 3 {
		t.Errorf("version after a swap and a refused one = %d, want 3", v)
	}
	if err := pgstore.Migrate(ctx, pool, opts); err != nil {
		t.Errorf("Migrate on a table with rows: %v", err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || !refresh.SameToken(got, t1) {
		t.Errorf("Load after another Migrate: %v, %v; want the saved token", got, err)
	}
}

// TestMigrateChecksColumns: an existing table of the same name that lacks
// the store's columns is reported, not silently used.
func TestMigrateChecksColumns(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	if _, err := pool.Exec(ctx, "CREATE TABLE "+pgx.Identifier{schema, "refresh_tokens"}.Sanitize()+" (key text PRIMARY KEY, token text)"); err != nil {
		t.Fatal(err)
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "access_token") {
		t.Errorf("Migrate over a foreign table: %v, want an error naming a missing column", err)
	}
}

// TestDefaultTableInSearchPath: without a schema the table is found
// through search_path, and such a store takes the same locks as one that
// names the schema.
func TestDefaultTableInSearchPath(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t, func(c *pgxpool.Config) { c.ConnConfig.RuntimeParams["search_path"] = schema })
	ctx := ctx5s(t)
	plain := migrated(t, pool, pgstore.Options{})
	if plain.Table() != `"refresh_tokens"` {
		t.Errorf("Table() = %s, want \"refresh_tokens\"", plain.Table())
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'refresh_tokens'", schema).Scan(&n); err != nil || n != 1 {
		t.Fatalf("refresh_tokens in %s: %d, %v; want 1", schema, n, err)
	}
	qualified, err := pgstore.New(testPool(t), pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	if err := plain.Save(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}
	if got, err := qualified.Load(ctx, "k"); err != nil || !refresh.SameToken(got, tok) {
		t.Fatalf("Load through the qualified name: %v, %v", got, err)
	}
	unlock, err := plain.Lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := lockWithin(qualified, "k", 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Errorf("Lock through the qualified name while held through search_path: %v, want DeadlineExceeded", err)
	}
	unlock()
	u, err := lockWithin(qualified, "k", 2*time.Second)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	u()
}

// TestOddTableName: names are quoted identifiers, so a name that would be
// SQL if pasted in is just a name.
func TestOddTableName(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	opts := pgstore.Options{Schema: schema, Table: `Tokens "x"; DROP TABLE y; --`}
	s := migrated(t, pool, opts)
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	if err := s.Save(ctx, "k", tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || !refresh.SameToken(got, tok) {
		t.Fatalf("Load: %v, %v", got, err)
	}
	var name string
	if err := pool.QueryRow(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema).Scan(&name); err != nil || name != opts.Table {
		t.Errorf("table in %s: %q, %v; want %q", schema, name, err, opts.Table)
	}
}

// TestNewValidates: New refuses what cannot work, without connecting.
func TestNewValidates(t *testing.T) {
	cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // lazy: no connection yet
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	one := cfg.Copy()
	one.MaxConns = 1
	tiny, err := pgxpool.NewWithConfig(context.Background(), one)
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()

	if _, err := pgstore.New(pool, pgstore.Options{Schema: "s", Table: "t"}); err != nil {
		t.Errorf("New over an unreachable database: %v, want nil (New does not connect)", err)
	}
	for _, tt := range []struct {
		name string
		pool *pgxpool.Pool
		opts pgstore.Options
		want string
	}{
		{"nil pool", nil, pgstore.Options{}, "nil pool"},
		{"one connection", tiny, pgstore.Options{}, "at least 2"},
		{"long table", pool, pgstore.Options{Table: strings.Repeat("t", 64)}, "longer than 63"},
		{"long schema", pool, pgstore.Options{Schema: strings.Repeat("s", 64)}, "longer than 63"},
		{"NUL", pool, pgstore.Options{Table: "a\x00b"}, "NUL"},
		{"not UTF-8", pool, pgstore.Options{Schema: "a\xffb"}, "UTF-8"},
	} {
		if _, err := pgstore.New(tt.pool, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New with %s: %v, want an error containing %q", tt.name, err, tt.want)
		}
		if tt.pool != tiny {
			if err := pgstore.Migrate(context.Background(), tt.pool, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Migrate with %s: %v, want an error containing %q", tt.name, err, tt.want)
			}
		}
	}
	if _, err := pgstore.New(pool, pgstore.Options{Table: strings.Repeat("t", 63)}); err != nil {
		t.Errorf("New with a 63-byte name: %v", err)
	}
	for _, poll := range []time.Duration{time.Nanosecond, 50, time.Millisecond - 1, -time.Second} {
		if _, err := pgstore.New(pool, pgstore.Options{LockPoll: poll}); err == nil || !strings.Contains(err.Error(), "LockPoll") {
			t.Errorf("New with LockPoll %v: %v, want an error about LockPoll", poll, err)
		}
	}
	if _, err := pgstore.New(pool, pgstore.Options{LockPoll: time.Millisecond}); err != nil {
		t.Errorf("New with LockPoll 1ms: %v", err)
	}
}

// TestKeysThatTextCannotHold: a key PostgreSQL text cannot hold is refused
// with an error, never stored as another key.
func TestKeysThatTextCannotHold(t *testing.T) {
	pool := testPool(t)
	s := migrated(t, pool, pgstore.Options{Schema: testSchema(t)})
	ctx := ctx5s(t)
	tok := &oauth2.Token{AccessToken: "at-secret", RefreshToken: "rt-secret"}
	for _, key := range []string{"a\x00b", "a\xffb"} {
		if err := s.Save(ctx, key, tok); err == nil || strings.Contains(err.Error(), "secret") {
			t.Errorf("Save(%q): %v, want an error without the token", key, err)
		}
		if _, err := s.Load(ctx, key); err == nil || errors.Is(err, refresh.ErrNotFound) {
			t.Errorf("Load(%q): %v, want an error other than ErrNotFound", key, err)
		}
	}
	// The lock works for any key: its id is computed by the client.
	unlock, err := s.Lock(ctx, "a\x00b")
	if err != nil {
		t.Fatalf("Lock of a NUL key: %v", err)
	}
	unlock()
}

// column is one column of a table made by hand: its name and the rest of
// its definition.
type column struct{ name, def string }

// storeColumns are the columns of the table the package documentation
// shows, which Migrate would create.
var storeColumns = []column{
	{"key", `text COLLATE "C" PRIMARY KEY`},
	{"access_token", `text COLLATE "C" NOT NULL`},
	{"token_type", `text NOT NULL`},
	{"refresh_token", `text COLLATE "C" NOT NULL`},
	{"expiry", `timestamptz NULL`},
	{"expires_in", `bigint NOT NULL`},
	{"version", `bigint NOT NULL`},
	{"updated_at", `timestamptz NOT NULL DEFAULT now()`},
	{"extra", `text NULL`},
}

// createTable creates the table ident by hand, with storeColumns but for
// those that change replaces.
func createTable(t *testing.T, pool *pgxpool.Pool, ident string, change ...column) {
	t.Helper()
	var defs []string
	for _, c := range storeColumns {
		for _, r := range change {
			if r.name == c.name {
				c = r
			}
		}
		if c.def != "" { // an empty definition leaves the column out
			defs = append(defs, pgx.Identifier{c.name}.Sanitize()+" "+c.def)
		}
	}
	if _, err := pool.Exec(ctx5s(t), "CREATE TABLE "+ident+" ("+strings.Join(defs, ", ")+")"); err != nil {
		t.Fatalf("create %s: %v", ident, err)
	}
}

// icuCollation creates a case-insensitive, nondeterministic ICU collation
// in schema and returns its quoted name, or skips the test if the server
// has no ICU.
func icuCollation(t *testing.T, pool *pgxpool.Pool, schema string) string {
	t.Helper()
	ctx := ctx5s(t)
	var icu bool
	if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collprovider = 'i')").Scan(&icu); err != nil {
		t.Fatal(err)
	}
	if !icu {
		t.Skip("the server was built without ICU: no nondeterministic collation to test with")
	}
	name := pgx.Identifier{schema, "ci"}.Sanitize()
	if _, err := pool.Exec(ctx, "CREATE COLLATION IF NOT EXISTS "+name+" (provider = icu, locale = 'und-u-ks-level2', deterministic = false)"); err != nil {
		t.Fatalf("create collation: %v", err)
	}
	return name
}

// TestMigrateRefusesTableShapes: an existing table whose columns have the
// right names but a type, a collation or a nullability that breaks what
// the store promises is refused, with an error that names the column and
// says what it is and what the store needs. Each case would otherwise
// hand out a wrong token or store one under another key, for example:
// char(n) ignores trailing spaces, so Load("alice  ") finds alice's row;
// timestamp without time zone shifts an expiry by the writer's UTC offset;
// a nondeterministic collation makes "Alice" equal "alice".
func TestMigrateRefusesTableShapes(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	for _, tc := range []struct {
		name   string
		change []column
		icu    bool     // needs a nondeterministic ICU collation, "ci"
		extra  string   // a statement run after CREATE TABLE; %s is the table
		want   []string // in the error
	}{
		{name: "char key", change: []column{{"key", "char(40) PRIMARY KEY"}}, want: []string{`"key"`, "character(40)"}},
		{name: "varchar(n) key", change: []column{{"key", `varchar(64) COLLATE "C" PRIMARY KEY`}}, want: []string{`"key"`, "character varying(64)"}},
		{name: "nondeterministic key", icu: true, change: []column{{"key", "text COLLATE ci PRIMARY KEY"}}, want: []string{`"key"`, "nondeterministic"}},
		{name: "nondeterministic unique index", icu: true, extra: "CREATE UNIQUE INDEX ON %s (key COLLATE ci)", want: []string{`"key"`, "nondeterministic", "index"}},
		{name: "key not unique", change: []column{{"key", `text COLLATE "C" NOT NULL`}}, want: []string{`"key"`, "unique"}},
		{name: "nondeterministic access token", icu: true, change: []column{{"access_token", "text COLLATE ci NOT NULL"}}, want: []string{`"access_token"`, "nondeterministic"}},
		{name: "nullable access token", change: []column{{"access_token", `text COLLATE "C" NULL`}}, want: []string{`"access_token"`, "NOT NULL"}},
		{name: "uuid refresh token", change: []column{{"refresh_token", "uuid NOT NULL"}}, want: []string{`"refresh_token"`, "uuid"}},
		{name: "char token type", change: []column{{"token_type", "char(10) NOT NULL"}}, want: []string{`"token_type"`, "character(10)"}},
		{name: "expiry without time zone", change: []column{{"expiry", "timestamp NULL"}}, want: []string{`"expiry"`, "timestamp without time zone"}},
		{name: "expiry in seconds", change: []column{{"expiry", "timestamptz(0) NULL"}}, want: []string{`"expiry"`, "timestamp(0) with time zone"}},
		{name: "expiry not null", change: []column{{"expiry", "timestamptz NOT NULL"}}, want: []string{`"expiry"`, "NULL"}},
		{name: "integer expires_in", change: []column{{"expires_in", "integer NOT NULL"}}, want: []string{`"expires_in"`, "integer"}},
		{name: "nullable expires_in", change: []column{{"expires_in", "bigint NULL"}}, want: []string{`"expires_in"`, "NOT NULL"}},
		{name: "integer version", change: []column{{"version", "integer NOT NULL"}}, want: []string{`"version"`, "integer"}},
		{name: "updated_at without time zone", change: []column{{"updated_at", "timestamp NOT NULL DEFAULT now()"}}, want: []string{`"updated_at"`, "timestamp without time zone"}},
		{name: "missing column", change: []column{{"updated_at", ""}}, want: []string{`"updated_at"`, "missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := strings.ReplaceAll(tc.name, " ", "_")
			ident := pgx.Identifier{schema, table}.Sanitize()
			if tc.icu {
				ci := icuCollation(t, pool, schema)
				for i, c := range tc.change {
					tc.change[i].def = strings.ReplaceAll(c.def, "COLLATE ci", "COLLATE "+ci)
				}
				tc.extra = strings.ReplaceAll(tc.extra, "COLLATE ci", "COLLATE "+ci)
			}
			createTable(t, pool, ident, tc.change...)
			if tc.extra != "" {
				if _, err := pool.Exec(ctx5s(t), fmt.Sprintf(tc.extra, ident)); err != nil {
					t.Fatal(err)
				}
			}
			err := pgstore.Migrate(ctx5s(t), pool, pgstore.Options{Schema: schema, Table: table})
			if !errors.Is(err, pgstore.ErrBadTable) {
				t.Fatalf("Migrate over a table with %s: %v, want an error wrapping ErrBadTable", tc.name, err)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Migrate over a table with %s: %q, want an error containing %q", tc.name, err, w)
				}
			}
		})
	}
}

// TestMigrateRefusesView: a view of the right columns is not a table the
// store can rely on (no unique index, no NOT NULL of its own).
func TestMigrateRefusesView(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	createTable(t, pool, pgx.Identifier{schema, "real"}.Sanitize())
	if _, err := pool.Exec(ctx, "CREATE VIEW "+pgx.Identifier{schema, "refresh_tokens"}.Sanitize()+" AS SELECT * FROM "+pgx.Identifier{schema, "real"}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.Options{Schema: schema}); err == nil || !strings.Contains(err.Error(), "view") {
		t.Errorf("Migrate over a view: %v, want an error saying it is a view", err)
	}
}

// TestMigrateAcceptsEquivalentShapes: a table made by hand that differs
// from Migrate's only in ways that change nothing for the store is used:
// varchar without a length (text by another name), the database's default
// collation (deterministic), a unique constraint in place of the primary
// key, and a column of the owner's own.
func TestMigrateAcceptsEquivalentShapes(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	ident := pgx.Identifier{schema, "refresh_tokens"}.Sanitize()
	createTable(t, pool, ident,
		column{"key", "varchar NOT NULL UNIQUE"},
		column{"access_token", "varchar NOT NULL"},
		column{"refresh_token", "text NOT NULL"},
		column{"updated_at", "timestamptz NULL"},
	)
	if _, err := pool.Exec(ctx, "ALTER TABLE "+ident+" ADD COLUMN note text"); err != nil {
		t.Fatal(err)
	}
	s := migrated(t, pool, pgstore.Options{Schema: schema})
	tok := testToken("eq")
	if err := s.Save(ctx, "alice", tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "alice"); err != nil || !refresh.SameToken(got, tok) || !got.Expiry.Equal(tok.Expiry) {
		t.Errorf("Load: %v, %v; want the saved token", got, err)
	}
}

// TestLoadChecksRowKey: a table whose key column matches keys loosely
// (char(n) ignores trailing spaces) and that Migrate never saw still never
// hands out a token for another key: Load compares the key of the row it
// read with the one it was asked for, byte for byte.
func TestLoadChecksRowKey(t *testing.T) {
	schema := testSchema(t)
	pool := testPool(t)
	ctx := ctx5s(t)
	createTable(t, pool, pgx.Identifier{schema, "refresh_tokens"}.Sanitize(), column{"key", "char(40) PRIMARY KEY"})
	s, err := pgstore.New(pool, pgstore.Options{Schema: schema}) // no Migrate: nothing checked the table
	if err != nil {
		t.Fatal(err)
	}
	tok := testToken("alice")
	if err := s.Save(ctx, "alice", tok); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"alice  ", "alice"} {
		got, err := s.Load(ctx, key)
		if err == nil {
			t.Errorf("Load(%q) from a char(40) key column: got %v, want an error", key, got)
			continue
		}
		if !errors.Is(err, pgstore.ErrBadTable) || strings.Contains(err.Error(), tok.AccessToken) {
			t.Errorf("Load(%q): %q, want an error wrapping ErrBadTable, without the token", key, err)
		}
	}
}
