package refresh

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	as := newAuthServer(t)
	e := newEngine(t, as, Config{})
	c := e.Client(nil)
	code, body, err := get(t, c, as.apiSrv.URL)
	if err != nil || code != 200 {
		t.Fatalf("got %d %q %v", code, body, err)
	}
	as.revokeAccess()
	code, body, err = get(t, c, as.apiSrv.URL)
	if err != nil || code != 200 {
		t.Fatalf("after revoke: got %d %q %v", code, body, err)
	}
	if n := as.refreshes.Load(); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	tok, _ := e.store.Load(context.Background(), DefaultKey)
	if tok.RefreshToken != as.token().RefreshToken {
		t.Errorf("store not updated")
	}
}
