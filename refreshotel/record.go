package refreshotel

import (
	"context"

	"github.com/oauthkit/refresh"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// A recorder records the events of one configuration: its store's kind is
// an attribute of the store's instruments.
type recorder struct {
	t     *Telemetry
	store string
	// byStore is the attribute set of the store's kind, built once.
	byStore metric.MeasurementOption
}

func newRecorder(t *Telemetry, store string) *recorder {
	return &recorder{t: t, store: store, byStore: metric.WithAttributeSet(attribute.NewSet(attrStore.String(store)))}
}

// record records ev on the instruments and as spans.
func (r *recorder) record(ev refresh.Event) {
	ctx, in := context.Background(), &r.t.inst
	switch ev.Kind {
	case refresh.EventRefresh:
		in.refreshDuration.Record(ctx, ev.Duration.Seconds(), metric.WithAttributes(
			attrTrigger.String(ev.Trigger.String()), attrOutcome.String(ev.Outcome.String())))
		if n := joined(ev); n > 0 {
			in.joined.Add(ctx, int64(n), metric.WithAttributes(attrTrigger.String(ev.Trigger.String())))
		}
		for _, req := range ev.Requests {
			in.requestDuration.Record(ctx, req.Duration.Seconds(), metric.WithAttributes(requestAttrs(req)...))
		}
		r.lockWait(ctx, ev)
		r.t.flightSpan("oauth2.refresh", ev)
	case refresh.EventAdopt:
		r.lockWait(ctx, ev)
		r.t.flightSpan("oauth2.adopt", ev)
	case refresh.EventResend:
		in.resends.Add(ctx, 1, metric.WithAttributes(attrReason.String(reason(ev.Outcome)), attrStatus.Int(ev.StatusCode)))
		r.t.requestSpan("oauth2.resend", ev, attrReason.String(reason(ev.Outcome)))
	case refresh.EventPaused:
		in.paused.Add(ctx, 1, metric.WithAttributes(attrStatus.Int(ev.StatusCode)))
		r.t.requestSpan("oauth2.paused", ev)
	case refresh.EventSaveFailed:
		in.saveFailures.Add(ctx, 1, r.byStore)
	case refresh.EventStore:
		if ev.Store.What == "lease lost" {
			in.leaseLost.Add(ctx, 1, metric.WithAttributes(attrStore.String(r.store), attrStoreOp.String(storeOp(ev.Store.Op))))
		}
	}
}

// lockWait records the time a flight waited for the store's lock, if it
// took one.
func (r *recorder) lockWait(ctx context.Context, ev refresh.Event) {
	if ev.Phases&refresh.PhaseLock != 0 {
		r.t.inst.lockWait.Record(ctx, ev.LockWait.Seconds(), r.byStore)
	}
}

// requestAttrs are the attributes of one token request: its status and
// OAuth error code if it failed with a response, and the failure's class.
func requestAttrs(req refresh.TokenRequest) []attribute.KeyValue {
	if req.Err == nil {
		return nil
	}
	kv := make([]attribute.KeyValue, 0, 3)
	if req.StatusCode != 0 {
		kv = append(kv, attrStatus.Int(req.StatusCode))
	}
	if req.Code != "" {
		kv = append(kv, attrCode.String(code(req.Code)))
	}
	return append(kv, attrError.String(errorType(req.Err)))
}

// storeOp bounds a store's operation name, which any store may set.
func storeOp(op string) string {
	switch op {
	case "lock", "unlock", "load", "save", "compare_and_swap", "delete":
		return op
	}
	return other
}

// joined is the number of ev's callers that joined a flight already
// running: all but the first, except for an early refresh, which no caller
// started.
func joined(ev refresh.Event) int {
	if ev.Trigger == refresh.TriggerDue {
		return len(ev.Callers)
	}
	return max(len(ev.Callers)-1, 0)
}
