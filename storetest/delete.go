package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// deleteCASer is a store that can delete and compare-and-swap: the checks
// of how the two meet.
type deleteCASer interface {
	refresh.Deleter
	refresh.CompareAndSwapper
}

// del calls Delete under the watchdog and reports a failure unless it
// returns nil.
func del(t tb, d refresh.Deleter, key, what string, o options) bool {
	t.Helper()
	var err error
	if !within(o.watchdog, func() { err = d.Delete(context.Background(), key) }) {
		t.Errorf("%s: Delete(%q) did not return within %v", what, short(key), o.watchdog)
		return false
	}
	if err != nil {
		t.Errorf("%s: Delete(%q): got error %q, want nil", what, short(key), err)
		return false
	}
	return true
}

// checkDeleteMissing: deleting a key that holds no token, never saved or
// deleted already, is not an error.
func checkDeleteMissing(t tb, d refresh.Deleter, o options) {
	key := newKeyspace(t).key("k")
	if !del(t, d, key, "Delete of a key never saved", o) || !save(t, d, key, newToken(t, "A")) {
		return
	}
	if del(t, d, key, "Delete of a saved key", o) && del(t, d, key, "Delete of a deleted key", o) {
		expectNotFound(t, d, key)
	}
}

// checkDeleteLoad: after Delete, Load finds nothing, and the token's
// extras are gone with it: that very token saved again without extras
// (by Save, or by a CompareAndSwap from nil) loads without them, so that
// a store that binds extras to their token is caught too.
func checkDeleteLoad(t tb, d refresh.Deleter, o options) {
	key := newKeyspace(t).key("k")
	a := newToken(t, "A")
	extras := map[string]any{"id_token": "eyJ.deleted." + randomHex(t, 8), "scope": "openid deleted"}
	if !save(t, d, key, withExtra(a, extras)) || !del(t, d, key, "Delete of a token with extras", o) {
		return
	}
	expectNotFound(t, d, key)
	if !save(t, d, key, clone(a)) {
		return
	}
	if got, ok := load(t, d, key); !ok || !expectToken(t, "Load after Delete and Save", got, a) ||
		!expectExtra(t, "Load of a token saved without extras after Delete of it with extras", got, nil) {
		return
	}
	c, ok := d.(refresh.CompareAndSwapper)
	if !ok {
		return
	}
	if !save(t, d, key, withExtra(a, extras)) || !del(t, d, key, "Delete of a token with extras", o) ||
		!cas(t, c, key, nil, a, "old nil after Delete") {
		return
	}
	if got, ok := load(t, d, key); ok {
		expectExtra(t, "Load of a token swapped in from nil without extras after Delete of it with extras", got, nil)
	}
}

// checkDeleteOther: Delete of one key leaves every other key as it was,
// keys that extend it or that it extends among them (a store that deletes
// by pattern or prefix).
func checkDeleteOther(t tb, d refresh.Deleter, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	others := map[string]*oauth2.Token{
		ks.key("other"):  newToken(t, "other"),
		key + "x":        newToken(t, "longer"),
		key[:len(key)-1]: newToken(t, "shorter"),
		key + "*":        newToken(t, "star"),
	}
	if !save(t, d, key, newToken(t, "deleted")) {
		return
	}
	for k, tok := range others {
		if !save(t, d, k, clone(tok)) {
			return
		}
	}
	if !del(t, d, key, "Delete of one key among others", o) {
		return
	}
	expectNotFound(t, d, key)
	for k, want := range others {
		got, err := d.Load(context.Background(), k)
		switch {
		case errors.Is(err, refresh.ErrNotFound):
			t.Errorf("Delete(%q) deleted %q too", short(key), short(k))
		case err != nil:
			t.Errorf("Load(%q) after Delete(%q): got error %q, want its token", short(k), short(key), err)
		default:
			expectToken(t, fmt.Sprintf("Load(%q) after Delete(%q)", short(k), short(key)), got, want)
		}
	}
}

// checkDeleteCAS: a CompareAndSwap from the deleted token fails with
// ErrConflict and stores nothing, so that a refresh that read the token
// before the Delete cannot bring the key back; one from nil stores again.
func checkDeleteCAS(t tb, s deleteCASer, o options) {
	key := newKeyspace(t).key("k")
	a, b, c := newToken(t, "A"), newToken(t, "B"), newToken(t, "C")
	if !save(t, s, key, clone(a)) || !del(t, s, key, "Delete of A", o) {
		return
	}
	casConflict(t, s, key, a, b, "old A after Delete")
	expectNotFound(t, s, key)
	if cas(t, s, key, nil, c, "old nil after Delete") {
		expectLoad(t, s, key, c)
	}
}

// checkDeleteRacesCAS: a Delete and a CompareAndSwap from the stored
// token, at the same moment, leave the key deleted whichever goes first:
// the swap either happens before the Delete (which then deletes its token)
// or finds nothing and fails. A deleted key is never brought back by the
// late save of a refresh that was running in another process.
func checkDeleteRacesCAS(t tb, s deleteCASer, o options) {
	const rounds = 40
	ks := newKeyspace(t)
	type round struct {
		key  string
		a, b *oauth2.Token
	}
	rs := make([]round, rounds)
	for i := range rs {
		rs[i] = round{ks.key(fmt.Sprint("k", i)), newToken(t, "A"), newToken(t, "B")}
	}
	f := &failures{limit: 5}
	finished := within(o.slow, func() {
		for i, r := range rs {
			if err := s.Save(context.Background(), r.key, clone(r.a)); err != nil {
				f.add("round %d: Save(%q): got error %q, want nil", i, short(r.key), err)
				return
			}
			var casErr, delErr error
			var wg sync.WaitGroup
			start := make(chan struct{})
			old, new := clone(r.a), clone(r.b)
			wg.Go(func() { <-start; casErr = s.CompareAndSwap(context.Background(), r.key, old, new) })
			wg.Go(func() { <-start; delErr = s.Delete(context.Background(), r.key) })
			close(start)
			wg.Wait()
			if casErr != nil && !errors.Is(casErr, refresh.ErrConflict) {
				f.add("round %d: CompareAndSwap(%q, A, B) racing Delete: got error %q, want nil or one wrapping refresh.ErrConflict",
					i, short(r.key), casErr)
			}
			if delErr != nil {
				f.add("round %d: Delete(%q) racing CompareAndSwap: got error %q, want nil", i, short(r.key), delErr)
			}
			switch tok, err := s.Load(context.Background(), r.key); {
			case errors.Is(err, refresh.ErrNotFound):
			case err != nil:
				f.add("round %d: Load(%q) after Delete and CompareAndSwap: got error %q, want one wrapping refresh.ErrNotFound",
					i, short(r.key), err)
			default:
				f.add("round %d: Load(%q) after Delete and CompareAndSwap(A, B) (which returned %s): got %s, want refresh.ErrNotFound: the swap brought the deleted key back",
					i, short(r.key), quoteErr(casErr), nameToken(tok, map[string]*oauth2.Token{"A": r.a, "B": r.b}))
			}
		}
	})
	f.report(t)
	if !finished {
		t.Errorf("%d rounds of Delete racing CompareAndSwap did not finish within %v", rounds, o.slow)
	}
}

// nameToken says which of named tok is, without its value.
func nameToken(tok *oauth2.Token, named map[string]*oauth2.Token) string {
	for name, n := range named {
		if tokenDiff(tok, n) == nil {
			return "token " + name
		}
	}
	return "a token this check did not save"
}
