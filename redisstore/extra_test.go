package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh/internal/tokenjson"
	"github.com/oauthkit/refresh/redisstore"
)

// The scripts of the release before token extras, frozen (git show
// main:redisstore/redisstore.go when the extras were added): what a process
// of that release, during a rolling deploy or after a rollback, writes
// with. Never edit them to make a test pass.
var (
	v1SaveScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'json', ARGV[1], 'cas', ARGV[2])
return 1
`)
	v1CASScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1])['ok']
if t == 'none' then
  if ARGV[1] ~= '' then return 0 end
elseif t ~= 'hash' then
  return -1
else
  local cur = redis.call('HMGET', KEYS[1], 'cas', 'json')
  if not cur[1] then return -2 end
  if cur[1] == ARGV[3] and cur[2] == ARGV[2] then return 1 end
  if cur[1] ~= ARGV[1] then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'cas', ARGV[3])
return 1
`)
)

// v1FromHash is how that release reads a token's hash: the "json" field
// alone, with tokenjson.Decode (whose strictness is the previous release's:
// see internal/tokenjson's TestPreviousReleaseReadsNewRecords).
func v1FromHash(key string, m map[string]string) (*oauth2.Token, error) {
	data, ok := m["json"]
	if !ok {
		return nil, fmt.Errorf("no json field")
	}
	return tokenjson.Decode(key, []byte(data))
}

func extraToken(name string) *oauth2.Token {
	return (&oauth2.Token{AccessToken: "at-" + name, RefreshToken: "rt-" + name}).
		WithExtra(map[string]any{"id_token": "id-" + name, "scope": "openid " + name})
}

// TestExtraAcrossReleases: the previous release reads a hash this one
// wrote (the extras are a field it does not look at), and a token that
// release writes over it, with Save or CompareAndSwap, loads here without
// the replaced token's extras.
func TestExtraAcrossReleases(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	ctx := context.Background()
	for _, oldWrite := range []string{"save", "compare-and-swap"} {
		key := "k-" + oldWrite
		rk := redisstore.TokenKey(s, key)
		if err := s.Save(ctx, key, extraToken("1")); err != nil {
			t.Fatal(err)
		}
		m, err := c.HGetAll(ctx, rk).Result()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m["extra"]; !ok {
			t.Fatalf("no extra field in the hash")
		}
		old, err := v1FromHash(key, m)
		if err != nil || old.AccessToken != "at-1" || old.RefreshToken != "rt-1" {
			t.Fatalf("the previous release cannot read the new hash: %v", err)
		}

		if err := v1Write(ctx, c, oldWrite, rk, key, extraToken("1"), &oauth2.Token{AccessToken: "at-2", RefreshToken: "rt-2"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, key)
		if err != nil || got.AccessToken != "at-2" {
			t.Fatalf("%s of the previous release: Load %v", oldWrite, err)
		}
		if got.Extra("id_token") != nil || got.Extra("scope") != nil {
			t.Errorf("%s of the previous release: the new token has the extras of the one it replaced", oldWrite)
		}
	}
}

// v1Write writes next over prev as the previous release does, with its
// Save or its CompareAndSwap (how: "save" or "compare-and-swap").
func v1Write(ctx context.Context, c redis.UniversalClient, how, rk, key string, prev, next *oauth2.Token) error {
	p, _ := redisstore.Hash(key, prev)
	n, _ := redisstore.Hash(key, next)
	if how == "save" {
		return v1SaveScript.Run(ctx, c, []string{rk}, n["json"], n["cas"]).Err()
	}
	r, err := v1CASScript.Run(ctx, c, []string{rk}, p["cas"], n["json"], n["cas"]).Int()
	if err == nil && r != 1 {
		err = fmt.Errorf("the previous release's compare-and-swap returned %d", r)
	}
	return err
}

// TestExtraField: a token without extras has no extra field; the retried
// CompareAndSwap that finds its own write done compares the extras too.
func TestExtraField(t *testing.T) {
	c := testClient(t)
	s := newStore(t, c, redisstore.Options{})
	ctx := context.Background()
	rk := redisstore.TokenKey(s, "k")
	if err := s.Save(ctx, "k", extraToken("1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"}); err != nil {
		t.Fatal(err)
	}
	if n, err := c.HExists(ctx, rk, "extra").Result(); err != nil || n {
		t.Fatalf("a token without extras left an extra field (%v, %v)", n, err)
	}
	// The same swap twice: the second finds its own write and succeeds.
	old := &oauth2.Token{AccessToken: "at-1", RefreshToken: "rt-1"}
	for range 2 {
		if err := s.CompareAndSwap(ctx, "k", old, extraToken("2")); err != nil {
			t.Fatalf("CompareAndSwap: %v", err)
		}
	}
	got, err := s.Load(ctx, "k")
	if err != nil || got.Extra("scope") != "openid 2" {
		t.Fatalf("Load: scope %v, %v", got.Extra("scope"), err)
	}
	// A corrupt extras field is corrupt, quoting nothing.
	if err := c.HSet(ctx, rk, "extra", `{"version":1,"tokens":"SECRET-VALUE"}`).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, redisstore.ErrCorrupt) || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("Load of a corrupt extra field: %v, want ErrCorrupt, quoting nothing", err)
	}
}
