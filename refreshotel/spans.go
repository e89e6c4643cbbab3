package refreshotel

import (
	"context"
	"time"

	"github.com/oauthkit/refresh"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// flightSpan records a refresh or adoption flight as a span, a child of the
// span of the caller that started it (an early refresh, which no caller
// started, begins a trace of its own), linked to the callers that joined it,
// with a child span per phase. The phases are laid out in the order the
// flight runs them (lock, store read, token requests, save); their
// durations are measured, and the token requests' starts too.
func (t *Telemetry) flightSpan(name string, ev refresh.Event) {
	parent := context.Background()
	var links []trace.Link
	starter := 0 // the caller that started the flight; an early refresh has none
	if ev.Trigger == refresh.TriggerDue {
		starter = -1
	}
	for i, c := range ev.Callers {
		sc := trace.SpanContextFromContext(c)
		switch {
		case !sc.IsValid():
		case i == starter:
			parent = trace.ContextWithSpanContext(parent, sc)
		default:
			links = append(links, trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.Bool("oauth2.refresh.joined", true)}})
		}
	}
	attrs := []attribute.KeyValue{
		attrTrigger.String(ev.Trigger.String()),
		attrOutcome.String(ev.Outcome.String()),
		attribute.Int("oauth2.refresh.callers", len(ev.Callers)),
	}
	attrs = appendTokens(attrs, ev)
	end := ev.Start.Add(ev.Duration)
	ctx, span := t.tracer.Start(parent, name, trace.WithTimestamp(ev.Start), trace.WithLinks(links...),
		trace.WithAttributes(attrs...), trace.WithSpanKind(trace.SpanKindInternal))
	if ev.Err != nil && ev.Outcome != refresh.OutcomeConflict {
		span.SetAttributes(attrError.String(errorType(ev.Err)))
		span.SetStatus(codes.Error, status(ev.Outcome, ev.Code))
	}

	at := ev.Start
	t.phase(ctx, ev, refresh.PhaseLock, "oauth2.lock", at, ev.LockWait)
	at = at.Add(ev.LockWait)
	t.phase(ctx, ev, refresh.PhaseStoreRead, "oauth2.store.read", at, ev.StoreRead)
	at = at.Add(ev.StoreRead)
	for _, req := range ev.Requests {
		_, s := t.tracer.Start(ctx, "oauth2.token_request", trace.WithTimestamp(req.Start),
			trace.WithAttributes(requestAttrs(req)...), trace.WithSpanKind(trace.SpanKindClient))
		if req.Err != nil {
			s.SetStatus(codes.Error, status(refresh.OutcomeNone, req.Code))
		}
		s.End(trace.WithTimestamp(req.Start.Add(req.Duration)))
		at = req.Start.Add(req.Duration)
	}
	if latest := end.Add(-ev.Save); latest.Before(at) {
		at = latest // the save ends with the flight at the latest
	}
	t.phase(ctx, ev, refresh.PhaseSave, "oauth2.save", at, ev.Save)
	span.End(trace.WithTimestamp(end))
}

// phase records phase p of a flight, which took d, if it ran.
func (t *Telemetry) phase(ctx context.Context, ev refresh.Event, p refresh.Phase, name string, start time.Time, d time.Duration) {
	if ev.Phases&p == 0 {
		return
	}
	_, s := t.tracer.Start(ctx, name, trace.WithTimestamp(start))
	s.End(trace.WithTimestamp(start.Add(d)))
}

// requestSpan records a resend or a pause as a span, a child of the
// request's span: the request was answered ev.StatusCode.
func (t *Telemetry) requestSpan(name string, ev refresh.Event, kv ...attribute.KeyValue) {
	sc := trace.SpanContextFromContext(ev.Context)
	if !sc.IsValid() {
		return // no request span to show it on
	}
	kv = append(kv, attrStatus.Int(ev.StatusCode))
	kv = appendTokens(kv, ev)
	_, s := t.tracer.Start(trace.ContextWithSpanContext(context.Background(), sc), name,
		trace.WithTimestamp(ev.Start), trace.WithAttributes(kv...))
	s.End(trace.WithTimestamp(ev.Start.Add(ev.Duration)))
}

// appendTokens adds the fingerprints of the tokens an event replaced and
// put in place.
func appendTokens(kv []attribute.KeyValue, ev refresh.Event) []attribute.KeyValue {
	if ev.OldToken != "" {
		kv = append(kv, attrOld.String(ev.OldToken))
	}
	if ev.NewToken != "" {
		kv = append(kv, attrNew.String(ev.NewToken))
	}
	return kv
}

// status is a span's status description: the outcome and the OAuth error
// code, never an error's text (which names the key).
func status(o refresh.Outcome, c string) string {
	s := o.String()
	if o == refresh.OutcomeNone {
		s = "token request failed"
	}
	if c != "" {
		s += ": " + code(c)
	}
	return s
}
