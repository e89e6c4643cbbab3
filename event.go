package refresh

import (
	"context"
	"errors"
	"time"

	"golang.org/x/oauth2"
)

// An Event reports one thing the engine did for a key: a refresh flight, a
// re-read of the store after a retry was rejected, a request sent again, a
// save that failed, a rejection it did not refresh, or what a store reported.
// It carries fingerprints of tokens, never their values, and errors whose
// text is cleaned of them. Set [Config.OnEvent] to receive events.
type Event struct {
	Kind    EventKind
	Key     string
	Trigger Trigger // what started it (refresh, adoption, resend, pause)
	// Outcome says how a refresh or an adoption ended. For a resend it
	// says where the token sent came from: OutcomeAdoptedMemory (the
	// rejected token had been replaced already: no refresh),
	// OutcomeRefreshed (a refresh flight, the request's own or one it
	// joined) or OutcomeAdoptedStore (a newer token in the store).
	Outcome Outcome

	// Err is the failure, if any: an *[Error]. Repeated is set when an
	// earlier event reported it already (a key still awaiting
	// re-authentication, or cooling down after a temporary failure):
	// alert on the events without it.
	Err      error
	Repeated bool

	// Start is when it began, and Duration how long it took: for a
	// refresh, from the flight's start to its result.
	Start    time.Time
	Duration time.Duration

	// The time a flight spent in each phase: waiting for the store's
	// cross-process lock, reading the store, saving the new token.
	LockWait  time.Duration
	StoreRead time.Duration
	Save      time.Duration
	// Phases says which of those phases ran, so that one that took no
	// measurable time is told from one that did not run.
	Phases Phase

	// Requests are the token-endpoint calls of a refresh, one per attempt.
	Requests []TokenRequest

	// StatusCode and Code are the HTTP status and the OAuth error code of
	// the last token request of a refresh that failed (see [Error]); for
	// a resend or a pause, StatusCode is the API's status.
	StatusCode int
	Code       string

	// OldToken and NewToken are the [Fingerprint]s of the access tokens
	// replaced and put in place ("" if none).
	OldToken, NewToken string

	// Callers are the contexts of the callers that waited for a refresh
	// or an adoption, first the one that started it, so that a tracer can
	// link their spans; len(Callers)-1 joined a flight already running.
	// An early refresh (TriggerDue) is started by no caller, for none
	// waits for it: all its Callers joined it. For a resend or a pause,
	// Context is the request's.
	Callers []context.Context
	Context context.Context

	// Pause is how long refreshing the key is paused (EventPaused).
	Pause time.Duration

	// Store is what a store reported (EventStore).
	Store StoreEvent
}

// TokenRequest is one call of the token endpoint.
type TokenRequest struct {
	Start    time.Time
	Duration time.Duration
	// StatusCode and Code are the response's HTTP status and OAuth error
	// code when the call failed; 0 and "" when it succeeded or no
	// response came back. Err is the failure.
	StatusCode int
	Code       string
	Err        error
}

// Phase is a set of the store phases of a flight ([Event].Phases).
type Phase uint8

const (
	PhaseLock      Phase = 1 << iota // it asked for the store's cross-process lock
	PhaseStoreRead                   // it read the store (or tried to)
	PhaseSave                        // it saved a new token (or tried to: see Err, EventSaveFailed)
)

// EventKind says what an [Event] reports.
type EventKind uint8

const (
	// EventRefresh: a refresh flight ended (Outcome says how).
	EventRefresh EventKind = iota + 1
	// EventAdopt: a re-read of the store for a request whose retry was
	// rejected too ended; it never calls the token endpoint.
	EventAdopt
	// EventResend: a request the API rejected was sent again with another
	// token (Trigger is TriggerRejected, NewToken the token sent).
	EventResend
	// EventSaveFailed: the store could not save a new token; it serves
	// from memory and is saved again later.
	EventSaveFailed
	// EventPaused: the API rejected tokens a refresh had just returned, so
	// a rejection was handed back to the caller without a refresh.
	EventPaused
	// EventStore: a store reported something (see [ReportStoreEvent]).
	EventStore
)

var kindNames = [...]string{"", "refresh", "adopt", "resend", "save_failed", "paused", "store"}

// String returns the kind's name in snake case, as metrics use it.
func (k EventKind) String() string { return name(kindNames[:], int(k)) }

// Trigger says what started a refresh, an adoption or a resend.
type Trigger uint8

const (
	TriggerNone     Trigger = iota
	TriggerMissing          // the key had no token in memory
	TriggerExpired          // the token had expired, or could not be sent
	TriggerDue              // the token was due for refresh, still valid
	TriggerRejected         // the API rejected the token
	TriggerRecheck          // a key awaiting re-authentication read the store again
)

var triggerNames = [...]string{"", "missing", "expired", "due", "rejected", "recheck"}

// String returns the trigger's name in snake case.
func (t Trigger) String() string { return name(triggerNames[:], int(t)) }

// Outcome says how a refresh or an adoption ended.
type Outcome uint8

const (
	OutcomeNone           Outcome = iota
	OutcomeRefreshed              // the token endpoint returned a new token
	OutcomeAdoptedMemory          // another flight or SetToken had replaced the token
	OutcomeAdoptedStore           // the store held a newer token, from another process or a login
	OutcomeUnchanged              // nothing newer; the token in use stays
	OutcomeReauthRequired         // the user must log in again (ErrReauthRequired)
	OutcomeClientConfig           // the endpoint refused the client (ErrClientConfig)
	OutcomeTemporary              // a temporary failure; tried again later
	OutcomeConflict               // a newer token was saved meanwhile; adopted instead
	OutcomeFailed                 // any other failure (Err tells)
	OutcomeDeferred               // an early refresh found another process refreshing; the valid token stays
)

var outcomeNames = [...]string{"", "refreshed", "adopted_memory", "adopted_store", "unchanged",
	"reauth_required", "client_config", "temporary", "conflict", "failed", "deferred"}

// String returns the outcome's name in snake case.
func (o Outcome) String() string { return name(outcomeNames[:], int(o)) }

func name(names []string, i int) string {
	if i < len(names) {
		return names[i]
	}
	return "unknown"
}

// StoreEvent is what a store reports about its own work, such as a lost
// lease of a cross-process lock.
type StoreEvent struct {
	Op   string // the store operation: "lock", "load", "save", ...
	What string // what happened, in a few words: "lease lost"
	Err  error  // the cause, if any; its text must hold no token
}

type reporterKey struct{}

// ReportStoreEvent lets a [TokenStore] report what happened during one of
// its calls: ctx is the context the engine passed to the call (a lock's
// background renewal may keep it). The engine delivers it as an
// [EventStore] event of the key. It does nothing for a context that did not
// come from an engine.
func ReportStoreEvent(ctx context.Context, ev StoreEvent) {
	if r, ok := ctx.Value(reporterKey{}).(*reporter); ok {
		r.e.emit(&Event{Kind: EventStore, Key: r.key, Start: time.Now(), Store: ev})
	}
}

type reporter struct {
	e   *Engine
	key string
}

// storeContext returns a context for the store calls of key, detached from
// ctx's cancellation, through which the store can report events.
func (e *Engine) storeContext(ctx context.Context, key string) context.Context {
	ctx = context.WithoutCancel(ctx)
	if e.events.fn == nil {
		return ctx
	}
	return context.WithValue(ctx, reporterKey{}, &reporter{e, key})
}

// startEvent begins the event of a flight of kind for key, started to
// replace s.
func (e *Engine) startEvent(kind EventKind, key string, trigger Trigger, s *snapshot) *Event {
	ev := &Event{Kind: kind, Key: key, Trigger: trigger, Start: time.Now()}
	if s != nil && s.tok != nil {
		ev.OldToken = Fingerprint(s.tok.AccessToken)
	}
	return ev
}

// setNew records the token a flight put in place.
func (ev *Event) setNew(s *snapshot) {
	if s != nil && s.tok != nil {
		ev.NewToken = Fingerprint(s.tok.AccessToken)
	}
}

// timeLock and timeLoad run a store call and add its time to the event.
func (ev *Event) timeLock(f func() (func(), error)) (func(), error) {
	t := time.Now()
	defer func() { ev.LockWait += time.Since(t) }()
	ev.Phases |= PhaseLock
	return f()
}

func (ev *Event) timeLoad(f func() (*oauth2.Token, error)) (*oauth2.Token, error) {
	t := time.Now()
	defer func() { ev.StoreRead += time.Since(t) }()
	ev.Phases |= PhaseStoreRead
	return f()
}

// finish completes the event of a flight that returned s and err.
func (ev *Event) finish(s *snapshot, err error, callers []context.Context) {
	ev.Duration = time.Since(ev.Start)
	ev.Callers = callers
	ev.setNew(s)
	if err != nil {
		ev.Err = err
		var x *Error
		if errors.As(err, &x) {
			ev.StatusCode, ev.Code = x.StatusCode, x.Code
		}
		if ev.Outcome == OutcomeNone {
			ev.Outcome = outcomeOf(err)
		}
	}
	if ev.Outcome == OutcomeNone {
		ev.Outcome = OutcomeUnchanged
	}
}

// outcomeOf tells how a flight that failed with err ended.
func outcomeOf(err error) Outcome {
	var x *Error
	switch {
	case errors.Is(err, ErrReauthRequired):
		return OutcomeReauthRequired
	case errors.Is(err, ErrClientConfig):
		return OutcomeClientConfig
	case errors.As(err, &x) && x.Temporary():
		return OutcomeTemporary
	}
	return OutcomeFailed
}
