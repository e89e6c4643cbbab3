// Package exampleutil holds what the provider examples share and is not
// about the provider: where tokens are kept, the API call, and the scripted
// run of -offline.
package exampleutil

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/filestore"
	"github.com/oauthkit/refresh/sealed"
)

// KeyEnv names the environment variable that, when set, encrypts the token
// store: 32 random bytes, base64-encoded, for example from
//
//	head -c 32 /dev/urandom | base64
//
// KeyEnv + "_ID" names the key (default "1"); see package sealed for key
// rotation. In production the key comes from a secret manager.
const KeyEnv = "TOKEN_STORE_KEY"

// OpenStore opens the token store of an example: a file store in dir, or
// in <user config dir>/refresh-examples/<app> when dir is empty (for
// example ~/.config/refresh-examples/gw2me on Linux), sealed with
// AES-256-GCM when TOKEN_STORE_KEY is set. Several processes may share it:
// one refreshes, the others adopt its token. It also returns a description
// for the user.
func OpenStore(app, dir string) (refresh.TokenStore, string, error) {
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, "", fmt.Errorf("no -store directory given and no user config directory: %w", err)
		}
		dir = filepath.Join(base, "refresh-examples", app)
	}
	fs, err := filestore.New(dir) // creates dir with mode 0700, files 0600
	if err != nil {
		return nil, "", err
	}
	secret := os.Getenv(KeyEnv)
	if secret == "" {
		return fs, dir + " (file store; set " + KeyEnv + " to encrypt it)", nil
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(secret))
	if err != nil || len(key) != 32 {
		return nil, "", fmt.Errorf("%s must be 32 bytes, base64-encoded (head -c 32 /dev/urandom | base64)", KeyEnv)
	}
	id := cmp.Or(os.Getenv(KeyEnv+"_ID"), "1")
	st, err := sealed.New(fs, sealed.Key{ID: id, Secret: key})
	if err != nil {
		return nil, "", err
	}
	return st, dir + " (file store, sealed with AES-256-GCM, key " + id + ")", nil
}

// HasToken reports whether the store holds a token for key.
func HasToken(ctx context.Context, store refresh.TokenStore, key string) (bool, error) {
	_, err := store.Load(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, refresh.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Get calls url through client, which carries and refreshes the token,
// and returns a one-line summary of the answer. Anything but 200 is an
// error. When the token could not be refreshed the error wraps the
// library's: errors.Is(err, refresh.ErrReauthRequired) means the user must
// log in again.
func Get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return fmt.Sprintf("%s: %s", resp.Status, s), nil
}
