// Package conformance runs the refresh engine against a real authorization
// server, ory/fosite, composed in the tests on a loopback httptest server:
// the resource-owner password grant for the first token pair (scope
// "offline"), the refresh-token grant with fosite's strict rotation (a used
// refresh token is inactive; presenting it again revokes the grant), RFC 7009
// revocation, and a protected API that introspects the bearer token through
// fosite and answers 401 with an "invalid_token" challenge. The client
// credentials grant runs there too, for a client authenticated by its
// secret and for one authenticated by private_key_jwt (RFC 7523).
//
// The assertions count what fosite did, not what the client believes:
// token-endpoint requests, successful refreshes, error responses by OAuth
// error code, fosite's refresh-token reuse detection (an invalid_grant whose
// description says the token "was already used"), calls of
// RevokeRefreshToken made by the token endpoint (fosite's family
// revocation, the precise reuse signal), and refresh tokens presented more
// than once on the wire.
//
// The package has no code outside its tests. It is a separate module so that
// the root module does not depend on fosite.
//
// # What the tests found out about fosite v0.49.0
//
//   - storage.MemoryStore does not rotate atomically. Two refreshes with the
//     same token that both read it before either rotates both get 200: there
//     is no loser at the token endpoint. Its RevokeRefreshToken and
//     RevokeAccessToken act on the newest tokens of the grant, so the later
//     rotation usually revokes the pair the earlier one just issued; that
//     client's next refresh is then reported as a reuse, which revokes the
//     other client's pair too. Only a store whose rotation fails for the
//     loser (Hydra's SQL persister, emulated here by
//     serverOptions.transactional) gives 400 invalid_request ("Failed to
//     refresh token because of multiple concurrent requests using the same
//     token. Please retry the request.").
//   - A refresh that arrives after the rotation is a reuse: 400
//     invalid_grant "… The refresh token was already used.", and the grant's
//     newest refresh and access tokens are revoked.
//   - fosite cannot tell a revoked refresh token from a used one: after an
//     RFC 7009 revocation the next refresh is answered and counted as a
//     reuse. Revoking an access token through the RFC 7009 endpoint revokes
//     the refresh token of its grant too (RFC 7009 §2.1 allows it), so the
//     tests revoke a single access token in fosite's storage instead.
//   - Each rotation deletes the previous access token: requests in flight
//     with it get a 401, which the engine absorbs without another refresh.
//   - The access token's expiry is rounded to the second and expires_in is
//     truncated: a lifespan of L seconds gives expires_in L-1 or L, and
//     mostly L-1 once the engine refreshes at half the lifetime.
//   - MemoryStore.RevokeRefreshToken writes the RefreshTokens map holding
//     another mutex than its readers hold: a data race under -race with a
//     concurrent GetRefreshTokenSession (an introspection of a rejected
//     access token falls back to one). The tests' storage wrapper makes
//     each storage call atomic. Some fosite.Config getters fill a nil field
//     on first use, another race; the tests set those fields.
//   - private_key_jwt works only for a fosite.OpenIDConnectClient with
//     TokenEndpointAuthMethod "private_key_jwt" and
//     TokenEndpointAuthSigningAlgorithm equal to the assertion's alg (the
//     default is RS256, so an ES256 key must say so); the key must have use
//     "sig" and the kid the assertion names. fosite refuses every assertion
//     while Config.TokenURL is empty (it is the aud it checks), and remembers
//     a jti until the assertion's exp: a replay gets 400 jti_known, not
//     invalid_client.
package conformance
