package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrBadTable is wrapped by the error of [Migrate] when the table exists
// but a column's type, collation or nullability, or the table's kind or
// unique index, is not what the store needs (see the package
// documentation); and by the error of [Store.Load] when the row it read
// holds another key than the one asked for, which only such a table can
// cause.
var ErrBadTable = errors.New("the table does not fit the store")

// need is what the store needs of one column of its table.
type need struct {
	name  string
	types []uint32 // OIDs of the accepted types, always without a type modifier
	want  string   // the accepted types, for messages

	notNull  bool // read into a Go value that cannot hold NULL
	nullable bool // written as NULL (a zero Expiry)
	exact    bool // compared with = by the store's SQL: the collation must be deterministic
}

// textTypes are the string types that hold any string exactly: text, and
// varchar without a length, which is text by another name. char(n) pads
// and compares without trailing spaces; varchar(n) refuses longer strings,
// except those whose excess is spaces, which it cuts silently, so two keys
// would share a row.
var textTypes = []uint32{pgtype.TextOID, pgtype.VarcharOID}

const textWant = "text or varchar without a length"

// needs are the columns of the table, as Migrate creates them.
var needs = []need{
	{name: "key", types: textTypes, want: textWant, exact: true},
	{name: "access_token", types: textTypes, want: textWant, notNull: true, exact: true},
	{name: "token_type", types: textTypes, want: textWant, notNull: true},
	{name: "refresh_token", types: textTypes, want: textWant, notNull: true, exact: true},
	// timestamptz keeps an instant; timestamp without time zone keeps a
	// wall-clock reading, converted with each session's TimeZone, so an
	// expiry written from UTC+3 reads back 3 hours late. A precision
	// below microseconds would round an expiry up.
	{name: "expiry", types: []uint32{pgtype.TimestamptzOID}, want: "timestamptz without a precision", nullable: true},
	{name: "expires_in", types: []uint32{pgtype.Int8OID}, want: "bigint", notNull: true},
	{name: "version", types: []uint32{pgtype.Int8OID}, want: "bigint"},
	{name: "updated_at", types: []uint32{pgtype.TimestamptzOID}, want: "timestamptz without a precision"},
	// Added after the others: Migrate adds it to a table that lacks it.
	{name: "extra", types: textTypes, want: textWant, nullable: true},
}

// checkTable returns an error wrapping ErrBadTable that lists every way
// in which the table ident differs from what the store needs, or nil. The
// table exists.
func checkTable(ctx context.Context, tx pgx.Tx, ident string) error {
	var kind string
	err := tx.QueryRow(ctx, "SELECT relkind::text FROM pg_catalog.pg_class WHERE oid = pg_catalog.to_regclass($1)", ident).Scan(&kind)
	if err != nil {
		return err
	}
	switch kind {
	case "r", "p": // an ordinary or a partitioned table
	case "v", "m":
		return fmt.Errorf("%w: it is a view, want a table", ErrBadTable)
	default:
		return fmt.Errorf("%w: it is not a table (relkind %q)", ErrBadTable, kind)
	}
	problems, keyNum, err := checkColumns(ctx, tx, ident)
	if err != nil {
		return err
	}
	if keyNum != 0 {
		p, err := checkKeyIndex(ctx, tx, ident, keyNum)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBadTable, strings.Join(problems, "; "))
	}
	return nil
}

// checkColumns returns what is wrong with the table's columns, and the
// attribute number of its key column (0 if it has none).
func checkColumns(ctx context.Context, tx pgx.Tx, ident string) (problems []string, keyNum int16, err error) {
	type column struct {
		num           int16
		typ           uint32
		typmod        int32
		typeName      string
		notNull       bool
		collation     string
		deterministic bool
	}
	rows, err := tx.Query(ctx, `SELECT a.attname::text, a.attnum, a.atttypid, a.atttypmod,
		pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
		coalesce(co.collname::text, ''), coalesce(co.collisdeterministic, true)
		FROM pg_catalog.pg_attribute a
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
		WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, ident)
	if err != nil {
		return nil, 0, err
	}
	cols := map[string]column{}
	var name string
	var c column
	_, err = pgx.ForEachRow(rows, []any{&name, &c.num, &c.typ, &c.typmod, &c.typeName, &c.notNull, &c.collation, &c.deterministic}, func() error {
		cols[name] = c
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, n := range needs {
		c, ok := cols[n.name]
		q := pgx.Identifier{n.name}.Sanitize()
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %s is missing", q))
			continue
		case !slices.Contains(n.types, c.typ) || c.typmod != -1:
			problems = append(problems, fmt.Sprintf("column %s is %s, want %s", q, c.typeName, n.want))
		}
		if n.name == "key" {
			keyNum = c.num
		}
		if n.notNull && !c.notNull {
			problems = append(problems, fmt.Sprintf("column %s allows NULL, want NOT NULL", q))
		}
		if n.nullable && c.notNull {
			problems = append(problems, fmt.Sprintf("column %s is NOT NULL, want it to allow NULL (a token without expiry)", q))
		}
		if n.exact && !c.deterministic {
			problems = append(problems, fmt.Sprintf("column %s has the nondeterministic collation %q, want a deterministic one such as \"C\"", q, c.collation))
		}
	}
	return problems, keyNum, nil
}

// checkKeyIndex returns what is wrong with the unique indexes of the key
// column (attribute number keyNum): INSERT … ON CONFLICT (key) needs one,
// and takes every unique index on the column alone as its arbiter,
// whatever its collation, so one with a nondeterministic collation would
// make a Save of "Alice" overwrite the row of "alice".
func checkKeyIndex(ctx context.Context, tx pgx.Tx, ident string, keyNum int16) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT ic.relname::text, coalesce(co.collname::text, ''),
		coalesce(co.collisdeterministic, true), i.indimmediate AND i.indisvalid
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		LEFT JOIN pg_catalog.pg_collation co ON co.oid = i.indcollation[0]
		WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1
		AND i.indkey[0] = $2 AND i.indpred IS NULL AND i.indexprs IS NULL`, ident, keyNum)
	if err != nil {
		return nil, err
	}
	var (
		problems                 []string
		usable                   bool
		index, collation         string
		deterministic, immediate bool
	)
	_, err = pgx.ForEachRow(rows, []any{&index, &collation, &deterministic, &immediate}, func() error {
		switch {
		case !deterministic:
			problems = append(problems, fmt.Sprintf("unique index %s on column \"key\" has the nondeterministic collation %q, want a deterministic one",
				pgx.Identifier{index}.Sanitize(), collation))
		case immediate:
			usable = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !usable {
		problems = append(problems, `no unique index on column "key" alone that is valid and not deferrable: make "key" the primary key`)
	}
	return problems, nil
}
