package storetest

import (
	"context"
	"testing"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
)

// TestExtraCheckFailsBrokenStores: the Extra check fails a store that
// drops the extras and one that keeps the previous token's.
func TestExtraCheckFailsBrokenStores(t *testing.T) {
	for name, s := range map[string]refresh.TokenStore{
		"Extra dropped": &transformStore{transform: func(*oauth2.Token) {}}, // it saves a copy of the fields only
		"Extra of the previous token kept when the new one has none": new(staleExtraStore),
	} {
		if msgs := runCheck(t, "Extra", s); len(msgs) == 0 {
			t.Errorf("check Extra passed a store whose %s, want a failure", name)
		} else {
			t.Logf("%s: %s", name, msgs[0])
		}
	}
}

// staleExtraStore keeps the previous token's extras when a new token has
// none, like a column that an UPDATE does not set.
type staleExtraStore struct {
	refresh.MemoryStore
}

func (s *staleExtraStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if old, err := s.MemoryStore.Load(ctx, key); err == nil && tok.Extra("scope") == nil && old.Extra("scope") != nil {
		tok = clone(tok).WithExtra(map[string]any{"scope": old.Extra("scope")})
	}
	return s.MemoryStore.Save(ctx, key, tok)
}
