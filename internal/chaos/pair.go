package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A pair names a token pair of the refreshtest server by its grant (one
// login) and its number within the grant: 0 is the login's, n the one the
// n-th rotation issued. It is all the soak ever keeps or prints of a token:
// the values ("rt-<grant>-<n>-<hex>") never leave the store and the engine.
type pair struct{ grant, n int }

func (p pair) String() string { return fmt.Sprintf("%d/%d", p.grant, p.n) }

// parsePair reads the grant and pair number of a refreshtest token value,
// access ("at-…") or refresh ("rt-…").
func parsePair(v string) (pair, bool) {
	f := strings.SplitN(v, "-", 4)
	if len(f) != 4 || f[0] != "rt" && f[0] != "at" {
		return pair{}, false
	}
	g, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return pair{}, false
	}
	return pair{g, n}, true
}

var tokenValue = regexp.MustCompile(`\b(?:at|rt)-(\d+)-(\d+)-[0-9a-f]+`)

// redact replaces every refreshtest token value in s by its pair, so that
// an error message can be printed whatever it holds. The engine's messages
// never hold a token; this is a second line of defence.
func redact(s string) string {
	return tokenValue.ReplaceAllString(s, "<token $1/$2>")
}

// rel formats t as a time since the start of the soak.
func rel(start, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("+%.3fs", t.Sub(start).Seconds())
}
