package refreshtest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/oauthkit/refresh/refreshtest"
)

func TestExtraMembers(t *testing.T) {
	var calls []string
	srv := newServer(t, refreshtest.Options{Scope: "PRODUCTION", Extra: func(grant, pair int) map[string]any {
		calls = append(calls, fmt.Sprint(grant, pair))
		if pair == 2 {
			return nil // a response without them
		}
		return map[string]any{
			"id_token": fmt.Sprintf("id-%d-%d", grant, pair), "refresh_expires_in": 60,
			"access_token": "not this", "scope": "nor this",
		}
	}})
	tok := srv.Token()
	if got := tok.Extra("id_token"); got != "id-1-0" {
		t.Fatalf("the login's Extra(id_token) = %v, want id-1-0", got)
	}
	form := refreshForm(tok.RefreshToken)
	form.Set("scope", "PRODUCTION")
	r := do(t, nil, formRequest(t, srv, form))
	if r.status != http.StatusOK {
		t.Fatalf("refresh: status %d", r.status)
	}
	if r.str("id_token") != "id-1-1" || r.fields["refresh_expires_in"] != 60.0 || r.str("scope") != "PRODUCTION" ||
		r.str("access_token") == "not this" || r.str("token_type") != "bearer" {
		t.Fatalf("the first refresh's members are not the standard ones and Extra's")
	}
	form.Set("refresh_token", r.str("refresh_token"))
	r = do(t, nil, formRequest(t, srv, form))
	if r.status != http.StatusOK {
		t.Fatalf("second refresh: status %d", r.status)
	}
	if _, ok := r.fields["id_token"]; ok {
		t.Fatalf("the second refresh has an id_token; Extra returned none for it")
	}
	if fmt.Sprint(calls) != "[1 0 1 1 1 2]" {
		t.Fatalf("Extra was called for %v, want [1 0 1 1 1 2]", calls)
	}
}
