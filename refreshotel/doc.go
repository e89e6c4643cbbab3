// Package refreshotel turns the events of a [refresh.Engine] into
// OpenTelemetry metrics and traces.
//
// Create one [Telemetry] per program and build every engine through it:
//
//	tel, err := refreshotel.New(refreshotel.Options{}) // the global providers
//	...
//	defer tel.Close()
//	engine, err := tel.NewEngine(refresh.Config{OAuth2: conf, Store: store})
//
// It works from [refresh.Config.OnEvent] and [refresh.Engine.Stats], so it
// costs nothing on the request path: events reach it on the engine's event
// goroutine, after the fact. Spans are therefore created with the
// timestamps the events carry, as children of the span in the context of
// the request that started the refresh.
//
// No instrument or span carries a key (keys are often user identities, and
// unbounded) or a token; spans carry tokens' [refresh.Fingerprint]s only.
// The OAuth error codes of servers are reported as they are when RFC 6749,
// 7009, 8628, 8693 or 9449 define them, and as "_OTHER" otherwise, so a
// hostile server cannot grow the number of time series.
//
// # Metrics
//
// The gauges are asynchronous up-down counters (they sum over engines).
//
// All under the instrumentation scope "github.com/oauthkit/refresh":
//
//	oauth2.client.refresh.duration        histogram, s        oauth2.refresh.trigger, oauth2.refresh.outcome
//	oauth2.client.token_request.duration  histogram, s        http.response.status_code, oauth2.error.code, error.type
//	oauth2.client.refresh.joined          counter, {caller}   oauth2.refresh.trigger
//	oauth2.client.resends                 counter, {request}  oauth2.resend.reason, http.response.status_code
//	oauth2.client.paused                  counter, {request}  http.response.status_code
//	oauth2.client.lock.wait               histogram, s        oauth2.store.kind
//	oauth2.client.lease.lost              counter, {lease}    oauth2.store.kind, oauth2.store.operation
//	oauth2.client.save.failures           counter, {save}     oauth2.store.kind
//	oauth2.client.keys                    gauge, {key}
//	oauth2.client.keys.reauth_required    gauge, {key}
//	oauth2.client.keys.save_pending       gauge, {key}
//	oauth2.client.events.dropped          counter, {event}
//
// # Spans
//
// "oauth2.refresh" per refresh flight, with children "oauth2.lock",
// "oauth2.store.read", one "oauth2.token_request" per attempt and
// "oauth2.save"; the callers that joined the flight are its links.
// "oauth2.adopt" per re-read of the store after a retry was rejected too.
// "oauth2.resend" and "oauth2.paused", children of the request's span, when
// a request the API rejected was sent again or handed back.
package refreshotel
