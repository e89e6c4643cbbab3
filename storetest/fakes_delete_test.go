package storetest

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// A delFlaw is how a delStore breaks the Deleter contract.
type delFlaw int

const (
	delSound       delFlaw = iota
	delNothing             // Delete does nothing and reports success
	delErrsMissing         // Delete of a key without a token fails, as a DEL that counts what it removed might
	delKeepsExtra          // Delete leaves the extras, which the next token of the key then gets
	delSoft                // Delete marks the token deleted, and CompareAndSwap still compares with it
	delUnlocked            // Delete does not take the write lock, so it lands in CompareAndSwap's gap
	delPrefix              // Delete removes every key that starts with the key
	delHangs               // Delete with an ended context waits for ever
)

// casGap is how long delStore's CompareAndSwap takes between its check
// and its write, as a store that does I/O does: only the write lock keeps
// a Delete out of it.
const casGap = time.Millisecond

// delStore is a refresh.Deleter and refresh.CompareAndSwapper, correct
// unless flaw says otherwise. It keeps a token's extras apart from the
// token, as a store with a side file or column does.
type delStore struct {
	flaw  delFlaw
	stuck chan struct{} // delHangs: closed when the test ends

	wmu    sync.Mutex // the write lock: held by Save, CompareAndSwap (check, gap, write) and Delete
	mu     sync.Mutex // protects the maps
	toks   map[string]*oauth2.Token
	gone   map[string]bool // delSoft: tokens marked deleted, kept in toks
	extras map[string]map[string]any
}

func delStoreOf(flaw delFlaw) func(*testing.T) refresh.TokenStore {
	return func(t *testing.T) refresh.TokenStore {
		s := &delStore{flaw: flaw, stuck: make(chan struct{})}
		t.Cleanup(func() { close(s.stuck) })
		return s
	}
}

// live returns key's token, nil if it has none. Called with mu held.
func (s *delStore) live(key string) *oauth2.Token {
	if s.gone[key] {
		return nil
	}
	return s.toks[key]
}

func (s *delStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok := s.live(key)
	if tok == nil {
		return nil, refresh.ErrNotFound
	}
	if m := s.extras[key]; m != nil {
		return withExtra(tok, maps.Clone(m)), nil
	}
	return clone(tok), nil
}

func (s *delStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write(key, tok)
	return nil
}

// write stores tok. Like an UPDATE of a row and an INSERT of a new one,
// it clears the extras of a token it replaces, and assumes a key without a
// token has none. Called with both locks held.
func (s *delStore) write(key string, tok *oauth2.Token) {
	if s.toks == nil {
		s.toks, s.gone, s.extras = map[string]*oauth2.Token{}, map[string]bool{}, map[string]map[string]any{}
	}
	m := map[string]any{}
	for _, name := range extraNames {
		if v := tok.Extra(name); v != nil {
			m[name] = v
		}
	}
	switch {
	case len(m) > 0:
		s.extras[key] = m
	case s.live(key) != nil:
		delete(s.extras, key)
	}
	s.toks[key] = clone(tok)
	delete(s.gone, key)
}

func (s *delStore) CompareAndSwap(ctx context.Context, key string, old, new *oauth2.Token) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	cur := s.live(key)
	if s.flaw == delSoft {
		cur = s.toks[key] // a row marked deleted still matches, and keeps a nil old out
	}
	s.mu.Unlock()
	time.Sleep(casGap)
	if !refresh.SameToken(cur, old) {
		return fmt.Errorf("delStore: %w", refresh.ErrConflict)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write(key, new)
	return nil
}

func (s *delStore) Delete(ctx context.Context, key string) error {
	switch s.flaw {
	case delNothing:
		return nil
	case delHangs:
		if ctx.Err() != nil {
			<-s.stuck
		}
	case delUnlocked:
		s.mu.Lock()
		defer s.mu.Unlock()
		s.remove(key)
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.flaw {
	case delErrsMissing:
		if s.live(key) == nil {
			return fmt.Errorf("delStore: %q: %w", key, refresh.ErrNotFound)
		}
	case delKeepsExtra:
		delete(s.toks, key)
		return nil
	case delSoft:
		if s.toks[key] != nil {
			s.gone[key] = true
		}
		delete(s.extras, key)
		return nil
	case delPrefix:
		for k := range s.toks {
			if strings.HasPrefix(k, key) {
				s.remove(k)
			}
		}
		return nil
	}
	s.remove(key)
	return nil
}

// remove deletes everything of key. Called with mu held.
func (s *delStore) remove(key string) {
	delete(s.toks, key)
	delete(s.gone, key)
	delete(s.extras, key)
}

// TestDelStore: the sound delStore passes the whole suite, so each broken
// one fails by its flaw alone.
func TestDelStore(t *testing.T) {
	Run(t, delStoreOf(delSound))
}
