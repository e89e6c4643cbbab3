// Package refreshtest provides an OAuth2 authorization server and a
// protected API for tests, as net/http/httptest provides HTTP servers: start
// one with [NewServer], log in with [Server.Token], point your client at
// [Server.URL] and [Server.TokenURL] (or use [Server.Config]), make the
// server misbehave, and check its exact [Stats].
//
//	srv := refreshtest.NewServer(refreshtest.Options{})
//	defer srv.Close()
//	tok := srv.Token()        // a new login: access and refresh token
//	// … store tok, build your client from srv.Config() …
//	srv.RevokeAccessTokens()  // the API now answers 401
//	// … call srv.URL + "/anything" through your client …
//	if st := srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 { … }
//
// It imports only the standard library, golang.org/x/oauth2 and the
// module's JOSE code (internal/jose), not the refresh package, so that
// package's own tests can use it.
//
// # The protected API
//
// Every path under [Server.URL], with any method, wants an Authorization
// header "Bearer <access token>" (the scheme in any case, unless
// Options.Strict). A live token (one
// issued by the server, not expired on its clock, not revoked) gets 200,
// with the body "ok" for GET and HEAD and the request body echoed for other
// methods, and the [GrantHeader] naming its grant. Otherwise:
//
//   - no bearer token: 401 with WWW-Authenticate: Bearer realm="refreshtest"
//     and no error code (RFC 6750 §3.1);
//   - an unknown, expired or revoked token: 401 with
//     WWW-Authenticate: Bearer realm="refreshtest", error="invalid_token";
//   - any token at [ScopeNeededPath]: 403 with error="insufficient_scope";
//   - two Authorization headers: 400 with error="invalid_request".
//
// With Options.BareUnauthorized a 401 has no WWW-Authenticate header.
//
// # The token endpoint
//
// [Server.TokenURL] takes the refresh_token grant (RFC 6749 §6), and the
// two grants of the next section, and checks every request strictly: POST, no query string, the content type, each
// parameter at most once, the client's credentials exactly where
// Options.Auth puts them and nowhere else, grant_type, the refresh token and
// the scope, in that order. A refusal is answered in the Options.Errors
// style with the code RFC 6749 §5.2 gives: invalid_request (malformed, two
// authentication methods at once, no refresh token), invalid_client (wrong or
// misplaced credentials; 401), unsupported_grant_type, invalid_scope, and
// invalid_grant for a refresh token that is unknown, expired, spent or
// revoked. A granted refresh answers access_token, token_type "bearer"
// (Options.TokenType), expires_in (unless tokens never expire),
// refresh_token (unless RotateNever), scope (if Options.Scope is set) and the
// members of Options.Extra (an id_token, say). Options.Strict also refuses
// what the RFC tells servers to tolerate (unknown parameters, unencoded
// Basic credentials…), to pin a client's exact wire format; with
// Options.TokenPath, Auth, Errors, Scope, JSON and the others it speaks each
// seed API's dialect (see ExampleOptions_gw2).
//
// Refresh tokens rotate as Options.Rotation says. Presenting a spent one is
// a reuse: outside a grace window it is refused with invalid_grant and, as
// RFC 9700 §4.14.2 recommends, revokes its whole grant, the newest tokens
// included (Options.LenientReuse turns that off). Each [Server.Token] call
// starts a grant, so a multi-user test makes one per user.
//
// # Client credentials and token exchange
//
// In the form dialect the token endpoint also takes client_credentials
// (RFC 6749 §4.4) from a confidential client (a public one gets
// unauthorized_client), and token exchange ([GrantTokenExchange], RFC 8693)
// of a live access token it issued, subject_token_type
// [TokenTypeAccessToken], with an optional actor_token of the same kind.
// Each granted request starts a grant of its own: an access token (no
// refresh token unless GrantOptions.RefreshTokens) that the API accepts
// until it expires or is revoked, as a login's. Revoking the subject's
// grant leaves the exchanged token alone. The scope asked for is echoed;
// audience and resource, repeatable, are reported in [TokenEvent];
// Options.ClientCredentials and Options.TokenExchange can restrict them
// (invalid_scope, invalid_target) or refuse the grant (unauthorized_client).
// A subject or actor token that is unknown, expired or revoked gets
// invalid_grant, as most servers answer (RFC 8693 §2.2.2 says
// invalid_request). Faults, Hold, the error styles and Options.Strict apply
// as to refreshes; Stats.ClientCredentialsGrants and Stats.TokenExchanges
// count the grants. [Server.ClientCredentialsToken] gives a test such a
// token without a request, and [Server.ClientCredentialsConfig] a
// golang.org/x/oauth2/clientcredentials configuration.
//
// # Client assertions
//
// With Options.Auth AuthPrivateKeyJWT (and Options.ClientKey) or
// AuthClientSecretJWT the client authenticates to both endpoints with a
// JWT (RFC 7523 §2.2): client_assertion_type
// urn:ietf:params:oauth:client-assertion-type:jwt-bearer, client_assertion,
// optionally client_id, and no secret anywhere. The server verifies the
// signature with the client's key (RS256 or PS256, ES256) or secret
// (HS256), "none" and other algorithms refused, then iss and sub (the
// client_id), aud ([Server.TokenURL] or [Server.Issuer], alone or in an
// array), exp (in the future, at most 5 minutes ahead), iat and nbf (not
// in the future), and a jti never seen before while it is valid. Any
// failure, an assertion beside a client secret included, is
// invalid_client (401), counted in Stats.AssertionsRejected, a replayed
// jti also in Stats.AssertionReplays.
//
// # The revocation endpoint
//
// [Server.RevocationURL] (Options.RevocationPath, "/revoke" by default, on
// the token endpoint's host) takes RFC 7009 revocation requests: a form
// POST of token and an optional token_type_hint, checked as strictly as
// token requests, the client's credentials included (it takes a form even
// with Options.JSON). A refresh token revokes its whole grant: every
// refresh token of it, spent or not, then gets invalid_grant and the API
// answers 401 to its access tokens. An access token is revoked alone. An
// unknown token is answered 200 as well (RFC 7009 §2.2), and
// Options.RevokeRefreshTokensOnly refuses access tokens with
// unsupported_token_type. Stats.RevocationRequests and Stats.Revocations
// count the requests and the tokens they revoked.
//
// # Failures
//
// [Faults] add latency to token and revocation requests and make a share of
// them fail: 503, 429 with Retry-After, a reset connection, no answer at
// all, an HTML or a 2 MiB error page, or a body that never ends. With
// Faults.AfterGrant the refresh (or the revocation) happens but its answer
// is lost. [Server.SetFaults] changes them while the server runs. The
// revocation methods end tokens early, without a request:
// [Server.RevokeAccessTokens] (the API rejects them; one refresh cures it),
// [Server.RevokeGrants] (the user revoked the application) and
// [Server.Revoke] (one token); [Server.RefuseRefreshTokens] makes refresh
// tokens be refused with the code and description a provider documents.
// [Server.Hold] keeps token requests waiting at a [Gate] until the test
// releases them, to act while a refresh is in flight without sleeping.
//
// # Observing the token endpoint
//
// Options.OnTokenRequest receives a [TokenEvent] for every token request:
// granted, reused, refused or faulted, its grant type, which grant and pair
// it presented and which it got, whether it revoked its grant, whether a
// fault dropped its answer, and the request's headers, so that a test with
// many clients (many processes, even) can tell which of them received each
// rotation and account for every lost token family. Events name tokens by
// grant and pair number, never by value.
//
// # Without a network
//
// [Server.Transport] serves both hosts in memory, for testing/synctest
// bubbles (a network round trip stops their fake clock) and for tests that
// need to know what happened to a request as soon as RoundTrip returns.
// [Server.Current] tells the token a client of a grant should hold now, to
// compare with what the client stored.
//
// # Counters and determinism
//
// All state is behind one mutex and every counter in [Stats] is exact,
// under any concurrency. Token values are "at-<grant>-<n>-<random>" and
// "rt-<grant>-<n>-<random>": readable in failure messages, but a test
// cannot hardcode them; compare with what [Server.Token] or the token
// endpoint returned. Which requests fail under a Faults.Rate is decided in
// order of arrival, not at random. Options.Now replaces the clock of token
// expiry and grace windows, so they can be tested without sleeping.
package refreshtest
