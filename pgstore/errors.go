package pgstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Error is the error of an operation of a [Store], or of [Migrate], that
// failed in PostgreSQL or in pgx. Get it with errors.As.
//
// It keeps what helps to find the cause: the SQLSTATE and the names of the
// objects PostgreSQL said the error is about. It keeps nothing of the
// texts of PostgreSQL's and pgx's errors, which quote values of the
// statement and its row, tokens included: the detail of a check or
// not-null violation holds the whole failing row, an invalid input syntax
// error the value it could not read, a scan error the text it could not
// parse. Nor does it wrap those errors, so that no caller or logger can
// reach their texts either.
//
// It wraps (for errors.Is) [ErrNoTable] when the table or its schema does
// not exist, the context's error when the context ended, and the errors
// of a failed network connection (a *net.OpError, io.ErrUnexpectedEOF,
// pgconn.ErrConnClosed), none of which holds a value of a statement. The
// message of a failed connection attempt is kept, as no statement was sent.
type Error struct {
	Op    string // what failed: "load", "save", "compare-and-swap", "delete", "lock", "try-lock" or "migrate"
	Table string // the store's table, quoted and possibly qualified as in its SQL

	// Code is the SQLSTATE of PostgreSQL's error, such as "23514" for a
	// check violation; "" if the error did not come from the server.
	Code string

	// The names PostgreSQL gave with its error, where it gave them: of
	// the schema, table, column, data type and constraint the error is
	// about. Names, never values.
	Schema, TableName, Column, DataType, Constraint string

	connect bool    // the error happened while connecting
	reason  string  // pgstore's own words, when nothing else says what failed
	wrapped []error // what Unwrap returns; none holds a value of a statement
}

// SQLState returns e.Code, as pgconn.PgError does, so that code that asks
// any error for its SQLSTATE through this method finds it.
func (e *Error) SQLState() string { return e.Code }

// Unwrap returns the errors that e wraps: see [Error].
func (e *Error) Unwrap() []error { return e.wrapped }

func (e *Error) Error() string {
	var b strings.Builder
	if e.Op == "migrate" {
		b.WriteString("pgstore: migrate " + e.Table)
	} else {
		b.WriteString("pgstore: " + e.Op + " in " + e.Table)
	}
	if e.connect {
		b.WriteString(": cannot connect")
	}
	if e.Code != "" {
		b.WriteString(": PostgreSQL error " + e.Code)
		if name := conditionNames[e.Code]; name != "" {
			b.WriteString(" (" + name + ")")
		}
		for _, n := range []struct{ what, name string }{
			{"column", e.Column}, {"constraint", e.Constraint}, {"data type", e.DataType},
		} {
			if n.name != "" {
				b.WriteString(", " + n.what + " " + pgx.Identifier{n.name}.Sanitize())
			}
		}
	}
	if e.reason != "" {
		b.WriteString(": " + e.reason)
	}
	for _, w := range e.wrapped {
		if !strings.Contains(b.String(), w.Error()) { // a connect error's reason holds its network error
			b.WriteString(": " + w.Error())
		}
	}
	return b.String()
}

// newError returns the *Error of op on table that failed with err, or
// with ctx's end.
func newError(ctx context.Context, op, table string, err error) *Error {
	e := &Error{Op: op, Table: table}
	var (
		pe   *pgconn.PgError
		ce   *pgconn.ConnectError
		scan pgx.ScanArgError
		ne   *net.OpError
	)
	if errors.As(err, &ce) {
		e.connect = true
		// Connecting sends no statement, so the text of what failed
		// (a refused dial, a certificate, a rejected password) cannot
		// hold a token: keep it, though not ConnectError itself, whose
		// Config holds the password.
		if inner := ce.Unwrap(); inner != nil && !errors.As(err, &pe) {
			e.reason = inner.Error()
		}
	}
	switch {
	case errors.As(err, &pe):
		e.Code = pe.Code
		e.Schema, e.TableName, e.Column, e.DataType, e.Constraint = pe.SchemaName, pe.TableName, pe.ColumnName, pe.DataTypeName, pe.ConstraintName
		if pe.Code == "42P01" || pe.Code == "3F000" { // undefined_table, invalid_schema_name
			e.wrapped = append(e.wrapped, ErrNoTable)
		}
		e.reason = advice(op, pe.Code)
	case errors.As(err, &scan):
		e.reason = "cannot read column " + pgx.Identifier{scan.FieldName}.Sanitize() + " of the row"
	case errors.As(err, &ne):
		e.wrapped = append(e.wrapped, ne)
	case errors.Is(err, io.ErrUnexpectedEOF):
		e.wrapped = append(e.wrapped, io.ErrUnexpectedEOF)
	case errors.Is(err, pgconn.ErrConnClosed):
		e.wrapped = append(e.wrapped, pgconn.ErrConnClosed)
	}
	for _, c := range []error{context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, c) || errors.Is(ctx.Err(), c) {
			e.wrapped = append(e.wrapped, c)
		}
	}
	if e.Code == "" && e.reason == "" && len(e.wrapped) == 0 && !e.connect {
		switch {
		case pgconn.Timeout(err):
			e.reason = "timeout"
		default:
			e.reason = "pgx failed (its message is left out: it may quote the values of the statement)"
		}
	}
	return e
}

// conditionNames are PostgreSQL's names of the SQLSTATEs a store is most
// likely to meet, for messages.
var conditionNames = map[string]string{
	"08006": "connection_failure",
	"22001": "string_data_right_truncation",
	"22003": "numeric_value_out_of_range",
	"22008": "datetime_field_overflow",
	"22021": "character_not_in_repertoire",
	"22P02": "invalid_text_representation",
	"23502": "not_null_violation",
	"23503": "foreign_key_violation",
	"23505": "unique_violation",
	"23514": "check_violation",
	"23P01": "exclusion_violation",
	"25006": "read_only_sql_transaction",
	"28000": "invalid_authorization_specification",
	"28P01": "invalid_password",
	"3F000": "invalid_schema_name",
	"40001": "serialization_failure",
	"40P01": "deadlock_detected",
	"42501": "insufficient_privilege",
	"42703": "undefined_column",
	"42804": "datatype_mismatch",
	"42P01": "undefined_table",
	"42P10": "invalid_column_reference",
	"53300": "too_many_connections",
	"55P03": "lock_not_available",
	"57014": "query_canceled",
	"57P01": "admin_shutdown",
	"57P02": "crash_shutdown",
	"57P03": "cannot_connect_now",
	"57P05": "idle_session_timeout",
}

// advice is what an *Error of op with SQLSTATE code says to do, if
// anything: a table of an earlier release lacks a column the store uses
// (extra) until Migrate adds it.
func advice(op, code string) string {
	if code == "42703" && op != "migrate" { // undefined_column
		return "the table lacks a column the store uses; run pgstore.Migrate"
	}
	return ""
}
