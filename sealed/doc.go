// Package sealed encrypts tokens at rest: [New] wraps any
// [refresh.TokenStore] (a file, Redis, PostgreSQL, [refresh.MemoryStore]) so
// that the backend only ever holds tokens sealed with AES-256-GCM.
//
//	current := sealed.Key{ID: "2026-01", Secret: secretFromManager("tokens/2026-01")}
//	store, err := sealed.New(redisStore, current)
//	…
//	eng, err := refresh.New(refresh.Config{OAuth2: conf, Store: store})
//
// # What is protected
//
// Access and refresh tokens, their type and expiry, wherever the backend
// keeps them: its files, database rows and backups, replicas, dumps. Someone
// who can write to the backend can delete or replace a sealed value, but not
// forge one, alter one, or move one to another store key: every such value
// fails to open.
//
// Someone who can read the backend but not the key still learns, for each
// stored token:
//
//   - its store key, in the clear: every backend keeps it (filestore and
//     redisstore inside the stored JSON, pgstore in its key column), and a
//     store key is usually a user ID or an e-mail address;
//   - the ID of the key that sealed it;
//   - about how long the token is: the sealed value grows with it;
//   - whatever the backend records by itself, such as when the value was
//     last saved (a file's modification time, pgstore's updated_at), and so
//     how often that user's token is refreshed.
//
// So a backend reader knows which users have a token and when they use it,
// though none of the tokens. [HideKeys] takes the store keys away too: see
// Hiding store keys.
//
// # Hiding store keys
//
// [HideKeys] wraps the backend so that it sees, instead of each store key,
// the key's HMAC-SHA-256 under a naming secret of its own:
//
//	hidden, err := sealed.HideKeys(redisStore, secretFromManager("tokens/names"))
//	store, err := sealed.New(hidden, current, old...)
//
// A backend reader then learns how many tokens there are and can follow
// each one's saves through time, but not whose it is. Sealing still binds
// each value to the store key itself, so a value copied to another name
// does not open. The naming secret is separate from the sealing keys
// because it cannot be rotated: a new one renames every key, and the
// tokens stored under the old names are no longer found.
//
// # What is not
//
// Tokens in the memory of the process: the engine holds them in the clear
// to send them. The key itself: keep it in a secret manager (or a KMS that
// hands out data keys), never in the backend or next to its backups, and
// give each environment its own. An old sealed value that an attacker saves
// back into the backend opens fine (there is no rollback protection); the
// refresh token it holds has normally been rotated away by then.
//
// # Key rotation
//
//  1. Generate a new 32-byte key with a new ID (crypto/rand, or the secret
//     manager's generator).
//  2. Deploy every process with the new key as current and the old one in
//     old: sealed.New(next, newKey, oldKey). Tokens sealed with the old key
//     still open; every Save seals with the new key, and the engine saves
//     at each refresh.
//  3. Once every stored token has been saved again (wait one refresh-token
//     lifetime, or load and save each key yourself), drop the old key.
//
// A process that meets a token sealed with a key it does not know reports an
// error wrapping [ErrUnknownKeyID]: deploy the new key to every process
// before any of them uses it as current (step 2 in two passes when processes
// are updated one at a time: first as an old key everywhere, then as
// current).
//
// # Representation
//
// The backend stores *oauth2.Token values, so a sealed token is one: its
// AccessToken is
//
//	"sealed1:" + key ID + ":" + base64url(nonce || ciphertext)
//
// (base64url without padding, RFC 4648 §5) and every other field is zero.
// No token type, expiry or expires_in is left in the clear, and a backend
// that derives a time-to-live from Expiry sees none, so it cannot drop a
// refresh token that outlives its access token. The nonce is 12 random
// bytes (crypto/rand) drawn for each seal, so sealing the same token twice
// gives two different values; random nonces keep a key safe for 2^32 seals
// (NIST SP 800-38D), far more than a token store makes. The plaintext is JSON: access_token, token_type,
// refresh_token, expiry (RFC 3339 with nanoseconds, UTC), expires_in and,
// if the token has any, extra: its extras (oauth2.Token.Extra, such as an
// id_token), sealed with it, so the backend never sees them. Releases
// before the extras skip that member and open such a value as the token
// without them. A loaded expiry is in UTC: compare expiries with
// time.Time.Equal.
//
// # Additional data
//
// GCM authenticates, with the ciphertext,
//
//	"refresh/sealed/v1\x00" + key ID + "\x00" + store key
//
// so a value copied to another store key (another user's, say) or relabelled
// with another key ID fails to open, with an error wrapping
// [ErrAuthentication].
//
// # Errors
//
// Load returns the backend's errors unchanged: [refresh.ErrNotFound] still
// means no token. A value that does not open gives an error that is never
// ErrNotFound, so the engine makes no token-endpoint call on a guess: it
// wraps [ErrNotSealed] (a plaintext token, stored before the wrapper was
// added: load it from the backend and save it through the wrapper once),
// [ErrUnknownKeyID] or [ErrAuthentication]. Messages name the store key and
// the key ID, never a token or key material.
//
// # Capabilities
//
// The store New returns is a [refresh.Locker], a [refresh.TryLocker], a
// [refresh.CompareAndSwapper] and a [refresh.Deleter] each if and only if
// the backend is (Lock, TryLock and Delete are the backend's).
// CompareAndSwap loads and opens the stored value, compares it with the
// expected token ([refresh.SameToken]), and swaps it with the backend's
// CompareAndSwap against the exact ciphertext it read, so the backend's
// atomicity carries over: after the backend's Delete it finds nothing, and
// refuses any old token.
package sealed
