package procs

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthkit/refresh"
)

// xoauth2 is Work for GrantXOAuth2: the same requests through the client
// of golang.org/x/oauth2's clientcredentials, which caches its token in
// this process only, for comparison. There is no engine and no store.
func (w *worker) xoauth2() int {
	style := oauth2.AuthStyleInParams
	if w.spec.Auth != refresh.AuthInBody {
		style = oauth2.AuthStyleInHeader
	}
	conf := &clientcredentials.Config{ClientID: w.spec.ClientID, ClientSecret: w.spec.ClientSecret,
		TokenURL: w.spec.TokenURL, AuthStyle: style}
	base := &http.Client{Timeout: 30 * time.Second, Transport: tracker{w}}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: 30 * time.Second})
	client := conf.Client(ctx)
	client.Transport.(*oauth2.Transport).Base = base.Transport
	rctx, cancel := context.WithTimeout(context.Background(), w.spec.Duration)
	defer cancel()
	w.pause = newPauser(nil, false, w.out) // pauses nothing; readStdin and request use it
	go w.readStdin(cancel)
	w.out.line("ready")
	w.run(rctx, client)
	w.mu.Lock()
	b, _ := json.Marshal(&w.rep)
	w.mu.Unlock()
	w.out.line("report %s", b)
	os.Stdout.Sync()
	return 0
}
