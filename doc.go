// Package refresh keeps OAuth2 access tokens working for programs that call
// protected APIs.
//
// Wrap an existing [http.Client] with [Engine.Client]. Every request then
// carries the bearer token of its key. When the API answers 401 (RFC 6750
// "invalid_token", or no error code) or the token is known to be expired,
// the [Engine] refreshes it with the refresh_token grant, exactly once
// however many goroutines hit the problem at the same moment, saves the new
// token in its [TokenStore], and the request is sent once more.
//
//	conf := &oauth2.Config{
//		ClientID:     "…",
//		ClientSecret: "…",
//		Endpoint: oauth2.Endpoint{
//			TokenURL:  "https://gw2.me/api/token",
//			AuthStyle: oauth2.AuthStyleInParams, // required: never auto-detect
//		},
//	}
//	eng, err := refresh.New(refresh.Config{OAuth2: conf, Store: store})
//	…
//	eng.SetToken(ctx, refresh.DefaultKey, tok) // once, after the user's login
//	client := eng.Client(existingClient)
//	resp, err := client.Get("https://api.example.com/v2/account")
//
// # Keys
//
// A key names one token lineage: a user's, a tenant's, a connection's. One
// engine serves any number of keys, and tokens never cross keys. A
// single-user program uses [DefaultKey] (Engine methods also accept "" for
// it). A multi-user program puts the key in each request's context with
// [WithKey], or fixes it per client with [Transport].Key.
//
// # When a token is refreshed
//
//   - No token in memory: it is loaded from the store.
//   - The token expires within the skew (Config.ExpirySkew, 60 s by
//     default, but at most half the token's lifetime, and up to half of it
//     earlier at random, so that many keys and processes do not refresh at
//     once, though never before half the lifetime). Such a token is still valid: requests keep using it while one
//     refresh replaces it in the background, and nobody waits. The refresh
//     starts when a request finds the token due: an idle key is never
//     refreshed. A token without an expiry is used until the API rejects
//     it.
//   - The API answers 401 with error "invalid_token" or no error code, or
//     Config.NeedsRefresh says so. A 403 "insufficient_scope" never
//     refreshes: a new token would have the same scope.
//
// A 401 for a token that has already been replaced is retried with the
// current token, without refreshing again. Before calling the token
// endpoint the engine re-reads the store: if another process stored a newer
// token, it is adopted instead.
//
// # Guarantees
//
// A refresh token is sent to the server once. The new token is saved before
// any caller uses it; if the save fails it is used from memory, reported
// through [Hooks].SaveFailed, and saved again later, because the old refresh
// token may already be invalid. A refresh runs detached from the context of
// the caller that started it, bounded by Config.RefreshTimeout: a caller
// that gives up gets its context's error, and the refresh still serves the
// others. A request is retried after at most one refresh, and only if its
// body can be replayed; if the retry is rejected because another process
// replaced that token meanwhile, it follows the newer token once, with no
// second refresh. The token is not sent to another host, or over http, when
// a request is redirected.
//
// # Stores
//
// A [TokenStore] loads and saves the token of a key; [MemoryStore] keeps
// them in memory. A store shared by several processes makes the single
// refresh hold across them when it is also a [Locker] (the engine holds the
// key's lock from re-reading the store to saving the new token) and a
// [CompareAndSwapper] (a holder that lost its lock cannot overwrite a newer
// token). Package filestore is such a store for processes on one machine,
// package sealed encrypts tokens before any store, and package storetest
// checks a store against these contracts.
//
// # Lifecycle
//
// [Engine.Close] stops the engine's background work and reports the tokens
// it could not save. [Engine.Forget] drops a key from memory (its next use
// reloads it from the store), Config.IdleTimeout does so for keys that go
// unused, and [Engine.Logout] revokes a key's token at the server, deletes
// it from the store (a [Deleter]) and forgets it. A key costs about 400
// bytes of memory.
//
// # Errors
//
// [ErrReauthRequired] means the refresh token is gone or was rejected
// ("invalid_grant", whatever the HTTP status): the user must log in again.
// From then on the key makes no token-endpoint call until [Engine.SetToken]
// provides a new token (or another process stores one). Other failures are
// an *[Error] with the status, the OAuth error code and whether retrying may
// help ([Error.Temporary]); [ErrClientConfig] means the server refused the
// client itself (fix the configuration). Only temporary failures are
// retried, a few times within one refresh; after any other failure the
// refresh token is never sent again. No error string or log line contains a token or
// a secret; [Fingerprint] identifies a token without revealing it.
//
// # Other uses
//
// [Engine.TokenSource] adapts the engine to [oauth2.TokenSource] for
// libraries that take one; [Engine.Token] and [Engine.Refresh] serve
// non-HTTP clients. The token endpoint is reached through the [Endpoint]
// interface: [FormEndpoint] is the standard grant with every client
// authentication style, a signed JWT instead of a secret among them
// ([PrivateKeyJWT], [ClientSecretJWT]), [JSONEndpoint] serves APIs that
// want a JSON body,
// and any other dialect can plug in. A [Revoker] also revokes tokens (RFC
// 7009): [FormEndpoint.Revoke], given a RevocationURL.
package refresh
