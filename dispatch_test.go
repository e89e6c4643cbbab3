package refresh

import (
	"context"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"
)

// TestDispatchDropsWhenBlocked: while OnEvent blocks, emitting never waits;
// the events beyond the queue are dropped and counted, every other one is
// delivered, in order.
func TestDispatchDropsWhenBlocked(t *testing.T) {
	release := make(chan struct{})
	var delivered atomic.Int64
	var last atomic.Int64
	e, err := New(Config{
		Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil }),
		OnEvent: func(ev Event) {
			<-release
			if n := int64(ev.StatusCode); n <= last.Load() {
				t.Errorf("event %d after %d: out of order", n, last.Load())
			} else {
				last.Store(n)
			}
			delivered.Add(1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	const n = maxQueuedEvents + 100
	for i := range n {
		e.emit(&Event{Kind: EventStore, StatusCode: i + 1}) // returns at once
	}
	close(release)
	FlushEvents(e)
	dropped := e.Stats().EventsDropped
	if dropped == 0 || delivered.Load()+int64(dropped) != n {
		t.Errorf("%d delivered, %d dropped; want some dropped and %d in all", delivered.Load(), dropped, n)
	}
}

// TestCloseBoundsEventWait: Close waits for OnEvent, but not forever for
// one that never returns.
func TestCloseBoundsEventWait(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	e, err := New(Config{
		Endpoint: EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil }),
		OnEvent:  func(Event) { <-block },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.emit(&Event{Kind: EventStore})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Close(ctx); err != nil { // returns: ctx is done
		t.Errorf("Close: %v", err)
	}
}
