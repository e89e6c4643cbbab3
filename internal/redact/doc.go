// Package redact hides secrets (tokens) in text that came from a server or
// a store before the text reaches an error, a log line or an event.
//
// A server that echoes a token rarely echoes it verbatim: it may sit in a
// form body (percent-encoded), in JSON (with "/" written as "\/", or "+" as
// "\u002B"), in a Basic credential or a base64-encoded document, or as hex.
// [Secrets.String] finds each secret in all of these spellings:
//
//   - raw, and with spaces as "+" (a form body);
//   - in the text with percent-encoding decoded ("%2F", "%2f"): this covers
//     [url.QueryEscape], [url.PathEscape] and any other choice of escaped
//     characters;
//   - in the text with JSON string escapes decoded ("\/", "\"", "\n",
//     "\u002f", "\u002F", surrogate pairs): this covers encoding/json (which
//     writes "\u003c", "\u003e", "\u0026", "\u2028", "\u0001"), PHP ("\/",
//     "\u00e9"), Python's ensure_ascii, .NET ("\u002B") and Gson
//     ("\u003d");
//   - base64 in the standard and URL alphabets, padded or not, at each of
//     the three alignments a secret can have inside a longer encoded blob
//     (Basic "base64(id:secret)", a base64-encoded JSON document). Inside a
//     blob the secret's bytes share their first and last base64 characters
//     with their neighbours, so the form searched is the run of characters
//     determined by the secret alone; a match also hides the character on
//     each side that carries some of the secret's bits, and any "=" padding;
//   - hex, lower and upper case.
//
// An escape just before an escaped secret can swallow its first bytes: in
// "%b0%E2%80%A8" a reader sees "b0%E2%80%A8", the secret "b0\u2028"
// percent-encoded, but decoding reads the byte "%b0" first. The rest of
// each form (the secret, its base64) is therefore also searched in the
// decoded texts, where the escape before it ends with the swallowed bytes
// (see leadsOf), or where the input before it, read from a backslash, is a
// JSON spelling of the first characters that decoding read otherwise,
// pairing that backslash with a stray one before it (`\\u0026…`: see
// view.unpaired; up to 8 characters, for a secret that starts with
// backslashes).
//
// Every form is also searched in the decoded texts, so that a base64 blob
// with "/" escaped as "\/", or percent-encoded, is found too. Each byte of
// the input that belongs to an occurrence of any form is marked first, and
// each run of marked bytes is then replaced by one marker: overlapping
// secrets, and a secret inside another, disappear completely.
//
// Secrets shorter than [MinLen] bytes are ignored, and so are base64 and
// hex forms shorter than 6 characters: such short strings occur in ordinary
// text, and hiding them would mangle it. Real tokens are far longer.
//
// Not found: a secret encoded twice over (percent-encoded JSON, "%252F"),
// HTML character references (the caller decodes them first, as
// tokenwire.Snippet does), the JSON form of a secret that is not valid
// UTF-8 (encoders replace its bytes), base64 of an escaped form (a JSON
// document with "\/" in it, then base64-encoded), and a secret whose first
// character is beyond the BMP, \u-escaped as a surrogate pair right after a
// stray backslash.
//
// # Cost
//
// [Secrets.String] searches each form in each of at most four texts: the
// input, and those of its decoded views that differ from it (JSON escapes
// decoded; the same with "\\" taken as two backslashes, so that `\\u002F`
// shows the escaped "/" a reader sees; percent-encoding decoded), each built
// only when the input holds a "\", "\\" or "%". Each search is one
// [strings.Index] scan, plus O(len(in)) steps for overlapping occurrences
// (see form.occurrences), so String costs about 4 × forms × len(in), with at
// most 10 forms for each secret, plus tails of each non-hex one, searched
// only in the decoded texts: one for a JSON spelling after a stray
// backslash (one more for each backslash the form starts with, up to 8),
// and about one more on average, up to five, for an escape that swallows
// first characters that are hex digits. A tail found is checked in at most
// 96 bytes before it. Each decoded view
// takes 5 bytes of memory for each byte of input, and the marks 4 once a
// secret is found. Callers cap what they pass (the token endpoint's body is
// at most 1 MiB).
package redact
