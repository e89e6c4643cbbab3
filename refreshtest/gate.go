package refreshtest

import "sync"

// A Gate holds token requests before the token endpoint handles them, until
// it is released, so that a test can act while a refresh is in flight
// without sleeping: cancel the client that sent it, send more requests, let
// the client's refresh timeout pass, or check that nothing else reached the
// server meanwhile. Get one from [Server.Hold]; it is safe for concurrent
// use.
type Gate struct {
	s       *Server
	open    chan struct{} // closed by Release
	reached chan struct{} // closed when the first request arrives
	once    sync.Once     // closes open

	mu   sync.Mutex
	held int // requests that arrived at the gate
}

// Hold puts a gate in front of the token endpoint and returns it: every
// token request that arrives from now on waits there, until [Gate.Release],
// before it is handled, as a request in Faults.Latency does, and is then
// handled as usual. It is counted in Stats.TokenRequests on arrival, and
// what the server decides on arrival is decided then: whether a fault
// answers it, and whether, with ConcurrentLoserInvalidRequest, a request
// with the same refresh token is in flight (a held one is). A client that
// gives up meanwhile does not free its request: a refresh can be granted
// that the client never sees.
//
// Requests that arrive after Release pass. Another Hold replaces the gate
// for requests that arrive later; those held wait for the gate they reached.
// [Server.Close] abandons held requests unanswered.
func (s *Server) Hold() *Gate {
	g := &Gate{s: s, open: make(chan struct{}), reached: make(chan struct{})}
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
	return g
}

// Release opens the gate: the requests it holds go on, concurrently, and
// later requests pass. Calling it again does nothing.
func (g *Gate) Release() {
	g.once.Do(func() {
		g.s.mu.Lock()
		if g.s.gate == g {
			g.s.gate = nil
		}
		g.s.mu.Unlock()
		close(g.open)
	})
}

// Held returns how many token requests have arrived at the gate so far,
// released or not.
func (g *Gate) Held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.held
}

// Reached returns a channel that is closed when the first token request
// arrives at the gate.
func (g *Gate) Reached() <-chan struct{} { return g.reached }

// arrive counts a request that will wait at the gate. Called with the
// server's mu held, so that a request that saw the gate is counted before
// Release can remove it.
func (g *Gate) arrive() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held++; g.held == 1 {
		close(g.reached)
	}
}

// wait waits until the gate opens. It reports false if closing is closed
// first.
func (g *Gate) wait(closing <-chan struct{}) bool {
	select {
	case <-g.open:
		return true
	case <-closing:
		return false
	}
}
