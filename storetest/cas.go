package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// Every check hands CompareAndSwap copies (clone), never the pointer it
// saved or loaded, so that a store comparing pointers fails.

// cas calls CompareAndSwap and reports a failure unless it succeeds.
func cas(t tb, s refresh.CompareAndSwapper, key string, old, new *oauth2.Token, what string) bool {
	t.Helper()
	if err := s.CompareAndSwap(context.Background(), key, clone(old), clone(new)); err != nil {
		t.Errorf("%s: CompareAndSwap(%q): got error %q, want nil", what, key, err)
		return false
	}
	return true
}

// casConflict calls CompareAndSwap and reports a failure unless it fails
// with ErrConflict.
func casConflict(t tb, s refresh.CompareAndSwapper, key string, old, new *oauth2.Token, what string) {
	t.Helper()
	err := s.CompareAndSwap(context.Background(), key, clone(old), clone(new))
	if !errors.Is(err, refresh.ErrConflict) {
		t.Errorf("%s: CompareAndSwap(%q): got error %s, want one wrapping refresh.ErrConflict", what, key, quoteErr(err))
	}
}

// checkCASCreate: with old nil, CompareAndSwap stores into an empty key,
// and only into an empty key; a non-nil old never matches an empty key.
func checkCASCreate(t tb, s refresh.CompareAndSwapper, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	a, b := newToken(t, "A"), newToken(t, "B")

	casConflict(t, s, key, a, b, "old A on an empty key")
	expectNotFound(t, s, key)

	if !cas(t, s, key, nil, a, "old nil on an empty key") {
		return
	}
	expectLoad(t, s, key, a)

	casConflict(t, s, key, nil, b, "old nil on a key that holds A")
	expectLoad(t, s, key, a)
}

// checkCASSwap: CompareAndSwap(A, B) replaces A with B (whole, and not
// through the caller's pointer); a stale CompareAndSwap(A, C) then fails and
// changes nothing.
func checkCASSwap(t tb, s refresh.CompareAndSwapper, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	a, c := newToken(t, "A"), newToken(t, "C")
	b := &oauth2.Token{AccessToken: "at.B." + randomHex(t, 8)} // no refresh token, no expiry: replaces A entirely
	if !save(t, s, key, clone(a)) {
		return
	}

	// As the engine does: compare with what Load returned.
	loaded, ok := load(t, s, key)
	if !ok {
		return
	}
	newB := clone(b)
	if err := s.CompareAndSwap(context.Background(), key, loaded, newB); err != nil {
		t.Errorf("CompareAndSwap(%q, A, B) with A stored: got error %q, want nil", key, err)
		return
	}
	scribble(newB)
	if !expectLoad(t, s, key, b) {
		return
	}

	casConflict(t, s, key, a, c, "stale old A, B stored")
	expectLoad(t, s, key, b)

	if cas(t, s, key, b, c, "old B, B stored") {
		expectLoad(t, s, key, c)
	}
}

// checkCASStaleAfterSave: a plain Save makes the token read before it
// stale for CompareAndSwap.
func checkCASStaleAfterSave(t tb, s refresh.CompareAndSwapper, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	a, b, c := newToken(t, "A"), newToken(t, "B"), newToken(t, "C")
	if !save(t, s, key, clone(a)) || !save(t, s, key, clone(b)) {
		return
	}
	casConflict(t, s, key, a, c, "old A after Save(B)")
	expectLoad(t, s, key, b)
}

// checkCASRace: of many goroutines that swap the same old token at once,
// exactly one succeeds, the others get ErrConflict, and the store holds the
// winner's token.
func checkCASRace(t tb, s refresh.CompareAndSwapper, o options) {
	const racers = 16
	ks := newKeyspace(t)
	key := ks.key("k")
	a := newToken(t, "A")
	if !save(t, s, key, clone(a)) {
		return
	}
	xs := make([]*oauth2.Token, racers)
	for i := range xs {
		xs[i] = newToken(t, fmt.Sprint("X", i))
	}

	errs := make([]error, racers)
	finished := within(o.slow, func() {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			old, new := clone(a), clone(xs[i])
			wg.Go(func() {
				<-start
				errs[i] = s.CompareAndSwap(context.Background(), key, old, new)
			})
		}
		close(start)
		wg.Wait()
	})
	if !finished {
		t.Errorf("%d concurrent CompareAndSwap(%q) did not return within %v", racers, key, o.slow)
		return
	}
	winner := -1
	var winners int
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = i
		case !errors.Is(err, refresh.ErrConflict):
			t.Errorf("racer %d: CompareAndSwap(%q, A, X%d): got error %q, want nil or one wrapping refresh.ErrConflict", i, key, i, err)
		}
	}
	if winners != 1 {
		t.Errorf("%d concurrent CompareAndSwap(%q, A, Xi) with A stored: got %d successes, want exactly 1", racers, key, winners)
	}
	if winners == 0 {
		expectLoad(t, s, key, a)
		return
	}
	got, ok := load(t, s, key)
	if !ok {
		return
	}
	if winners == 1 {
		expectToken(t, fmt.Sprintf("Load(%q) after the race won by X%d", key, winner), got, xs[winner])
		return
	}
	for i, err := range errs {
		if err == nil && tokenDiff(got, xs[i]) == nil {
			return // several won (reported above); one of them is stored
		}
	}
	t.Errorf("Load(%q) after the race: got %s, want the token of a racer that succeeded", key, describe(got))
}

// checkCASComparesTokensNotExpiry: CompareAndSwap compares AccessToken and
// RefreshToken (refresh.SameToken), not Expiry, TokenType or ExpiresIn, and
// both of the two.
func checkCASComparesTokensNotExpiry(t tb, s refresh.CompareAndSwapper, o options) {
	ks := newKeyspace(t)
	key := ks.key("k")
	a := newToken(t, "A")
	if !save(t, s, key, clone(a)) {
		return
	}

	// What a process may hold for the stored token: the same secrets,
	// with an expiry that went through another representation.
	sameSecrets := clone(a)
	sameSecrets.Expiry = a.Expiry.Add(-time.Hour).UTC()
	sameSecrets.TokenType = "bearer"
	sameSecrets.ExpiresIn = 0

	otherRefresh := clone(a)
	otherRefresh.RefreshToken += "x"
	otherAccess := clone(a)
	otherAccess.AccessToken += "x"

	b := newToken(t, "B")
	casConflict(t, s, key, otherRefresh, b, "old with A's AccessToken but another RefreshToken")
	casConflict(t, s, key, otherAccess, b, "old with A's RefreshToken but another AccessToken")
	if !expectLoad(t, s, key, a) {
		return
	}
	if cas(t, s, key, sameSecrets, b, "old with A's AccessToken and RefreshToken, another Expiry, TokenType and ExpiresIn") {
		expectLoad(t, s, key, b)
	}
}
