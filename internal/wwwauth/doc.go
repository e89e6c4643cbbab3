// Package wwwauth parses HTTP WWW-Authenticate response headers
// (RFC 9110, Section 11.6.1).
//
// It exists so that the refresh transport can decide, from the
// WWW-Authenticate header of a 401 response, whether refreshing the access
// token can help. An RFC 6750 "invalid_token" error, or no error code at all,
// means the token was rejected and a fresh one may succeed. Errors such as
// "insufficient_scope", "invalid_request" or DPoP's "use_dpop_nonce" are not
// cured by a new token, so refreshing would only waste a round trip.
//
// The parser is deliberately tolerant: servers send headers that stray from
// the grammar, and a partial result is more useful than none. Malformed list
// elements are skipped and parsing resumes at the next comma.
//
// # Limits
//
// The header comes from a server, and the transport parses it for every 401
// (twice when the retry is rejected too), so the cost of a call is bounded
// whatever the server sends. Only the first 8 KiB of a header are read: the
// bytes of all its values together, plus one byte for each value but the
// last (the line break between them). At most 64 challenges are read, and at
// most 64 auth-params of all of them together. Real servers send a few
// hundred bytes, a handful of challenges and fewer than ten auth-params each.
//
// Beyond a limit the header is treated as if it ended there, and a list
// element that the end of the first 8 KiB cuts short (a token that might go
// on, a quoted-string without its closing quote) is dropped rather than kept
// in part: a cut "error=invalid_token" must not read as the error
// "invalid_t". A header of 8 KiB or more therefore loses the element at its
// 8 KiB mark even when that element happens to end there.
//
// So a limit only ever removes a suffix of the list of auth-params. The
// answer of [ErrorCode] is then either the answer for the whole header, or
// "no error code" when the first error auth-param lies beyond the limit. A
// header past the limits can turn "do not refresh" (say, an
// "insufficient_scope" after 8 KiB of padding) into "refresh", never the
// other way. That direction is the harmless one: the transport refreshes
// and retries at most once per request, which a server could ask for anyway
// with error="invalid_token".
//
// Within the limits the work is linear: each byte is looked at a bounded
// number of times, and only the auth-param values that [Parse] keeps are
// copied (to resolve quoted-pair escapes). [ErrorCode] builds no challenge
// and returns at the first error auth-param.
package wwwauth
