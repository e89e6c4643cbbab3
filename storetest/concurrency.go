package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/oauthkit/refresh"
	"golang.org/x/oauth2"
)

// checkConcurrent: goroutines that save and load a few keys at once always
// load a whole token that was saved to that key, never a mix of two saves.
// Every field of a token encodes the same counter, and each counter is saved
// to one key only.
func checkConcurrent(t tb, s refresh.TokenStore, o options) {
	const workers, iterations, nkeys = 8, 50, 3
	ks := newKeyspace(t)
	nonce := randomHex(t, 8)
	keys := make([]string, nkeys)
	for i := range keys {
		keys[i] = ks.key(fmt.Sprint("concurrent", i))
	}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	keyOf := func(n int) int { return n % nkeys }
	tokenOf := func(n int) *oauth2.Token {
		return &oauth2.Token{
			AccessToken:  fmt.Sprintf("at.%d.%d.%s", keyOf(n), n, nonce),
			TokenType:    "Bearer",
			RefreshToken: fmt.Sprintf("rt.%d.%d.%s", keyOf(n), n, nonce),
			Expiry:       base.Add(time.Duration(n) * time.Second),
			ExpiresIn:    int64(n),
		}
	}
	// checkLoaded checks that tok is whole and was saved to key k.
	checkLoaded := func(f *failures, k int, tok *oauth2.Token) {
		var i, n int
		var rest string
		if _, err := fmt.Sscanf(tok.AccessToken, "at.%d.%d.%s", &i, &n, &rest); err != nil || rest != nonce {
			f.add("Load(%q): got AccessToken %q, which no Save of this test stored", keys[k], short(tok.AccessToken))
			return
		}
		if i != k || keyOf(n) != k {
			f.add("Load(%q): got the token saved to %q (AccessToken %q)", keys[k], keys[keyOf(n)], tok.AccessToken)
			return
		}
		if d := tokenDiff(tok, tokenOf(n)); d != nil {
			f.add("Load(%q): got a mix of several saves: %s", keys[k], strings.Join(d, "; "))
		}
	}

	f := &failures{limit: 10}
	ctx := context.Background()
	finished := within(o.slow, func() {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for it := range iterations {
					n := w*iterations + it + 1
					k := keyOf(n)
					if err := s.Save(ctx, keys[k], tokenOf(n)); err != nil {
						f.add("Save(%q): got error %q, want nil", keys[k], err)
						continue
					}
					// The key was just saved: it holds a token.
					for _, k := range []int{k, (k + 1) % nkeys} {
						tok, err := s.Load(ctx, keys[k])
						switch {
						case err != nil && k == keyOf(n):
							f.add("Load(%q) after Save: got error %q, want a token", keys[k], err)
						case err != nil:
							// Another key may not have been saved yet.
						case tok == nil:
							f.add("Load(%q): got nil token and nil error", keys[k])
						default:
							checkLoaded(f, k, tok)
						}
					}
				}
			})
		}
		wg.Wait()
	})
	if !finished {
		t.Errorf("%d goroutines × %d Save and Load did not finish within %v", workers, iterations, o.slow)
		f.report(t)
		return
	}
	for k := range keys {
		tok, ok := load(t, s, keys[k])
		if ok {
			checkLoaded(f, k, tok)
		}
	}
	f.report(t)
}

// checkContextCancelled: Load and Save (and CompareAndSwap, Lock and
// Delete, if the store has them) given a context that has already ended
// return promptly, with or without an error, and do not panic. A Save that
// reports success must have stored the token; one that fails must have
// stored it whole or not at all. A Delete that reports success must have
// deleted it; one that fails, deleted it or left it as it was.
func checkContextCancelled(t tb, s refresh.TokenStore, o options) {
	ks := newKeyspace(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	// call runs f under the watchdog, reporting a hang or a panic.
	call := func(what string, f func()) bool {
		t.Helper()
		var panicked any
		returned := within(o.watchdog, func() {
			defer func() { panicked = recover() }()
			f()
		})
		switch {
		case !returned:
			t.Errorf("%s with a cancelled context did not return within %v", what, o.watchdog)
			return false
		case panicked != nil:
			t.Errorf("%s with a cancelled context panicked: %v", what, panicked)
			return false
		}
		return true
	}

	missing := ks.key("missing")
	var tok *oauth2.Token
	var err error
	if call(fmt.Sprintf("Load(%q)", missing), func() { tok, err = s.Load(ctx, missing) }) {
		if err == nil && tok == nil {
			t.Errorf("Load(%q) with a cancelled context: got nil token and nil error", missing)
		}
		if err == nil && tok != nil {
			t.Errorf("Load(%q) of a missing key with a cancelled context: got %s, want an error", missing, describe(tok))
		}
	}

	key := ks.key("k")
	want := newToken(t, "cancelled")
	var saveErr error
	if !call(fmt.Sprintf("Save(%q)", key), func() { saveErr = s.Save(ctx, key, clone(want)) }) {
		return
	}
	if saveErr == nil {
		expectLoad(t, s, key, want)
	} else if got, err := s.Load(context.Background(), key); err == nil {
		expectToken(t, fmt.Sprintf("Load(%q) after a Save that failed with %q", key, saveErr), got, want)
	}

	stored := newToken(t, "stored")
	if !save(t, s, key, clone(stored)) {
		return
	}
	if call(fmt.Sprintf("Load(%q)", key), func() { tok, err = s.Load(ctx, key) }) && err == nil {
		expectToken(t, fmt.Sprintf("Load(%q) with a cancelled context", key), tok, stored)
	}

	if cas, ok := s.(refresh.CompareAndSwapper); ok {
		next := newToken(t, "cas")
		var casErr error
		if call(fmt.Sprintf("CompareAndSwap(%q)", key), func() { casErr = cas.CompareAndSwap(ctx, key, clone(stored), clone(next)) }) {
			if casErr == nil {
				stored = next
			}
			expectLoad(t, s, key, stored)
		}
	}

	if l, ok := s.(refresh.Locker); ok {
		var unlock func()
		var lockErr error
		if call(fmt.Sprintf("Lock(%q)", key), func() { unlock, lockErr = l.Lock(ctx, key) }) {
			switch {
			case lockErr == nil && unlock == nil:
				t.Errorf("Lock(%q) with a cancelled context: got nil unlock and nil error", key)
			case lockErr == nil:
				unlock()
			case !errors.Is(lockErr, context.Canceled):
				t.Errorf("Lock(%q) with a cancelled context: got error %q, want nil or one wrapping context.Canceled", key, lockErr)
			}
		}
	}

	if d, ok := s.(refresh.Deleter); ok {
		var delErr error
		if !call(fmt.Sprintf("Delete(%q)", key), func() { delErr = d.Delete(ctx, key) }) {
			return
		}
		switch got, err := s.Load(context.Background(), key); {
		case errors.Is(err, refresh.ErrNotFound):
		case delErr == nil:
			t.Errorf("Load(%q) after a Delete with a cancelled context that returned nil: got %s, want refresh.ErrNotFound",
				key, describeLoad(got, err, stored))
		case err == nil:
			expectToken(t, fmt.Sprintf("Load(%q) after a Delete that failed with %q", key, delErr), got, stored)
		}
	}
}

// describeLoad describes what Load returned, naming the token if it is
// stored rather than quoting it.
func describeLoad(tok *oauth2.Token, err error, stored *oauth2.Token) string {
	if err != nil {
		return fmt.Sprintf("error %q", err)
	}
	return nameToken(tok, map[string]*oauth2.Token{"stored before the Delete": stored})
}
