package grpcrefresh

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// maxReplay bounds the messages a stream keeps to send again if the server
// rejects its token before answering: a stream that sent more is not
// retried.
const maxReplay = 16

// StreamClientInterceptor returns the interceptor that opens each stream
// with the key's token and, if the server rejects it with
// codes.Unauthenticated before any message was received, has the engine
// replace the token and opens the stream once more, sending again the
// messages sent so far. A rejection after a message was received is
// returned as it is (the token is still replaced for the next call).
func (c *Credentials) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		key := c.key(ctx)
		open := func(actx context.Context) (grpc.ClientStream, error) {
			return streamer(actx, desc, cc, method, opts...)
		}
		actx, a, err := c.start(ctx, key)
		if err != nil {
			return nil, err
		}
		cs, err := open(actx)
		retried := false
		if err != nil {
			if !a.rejected(err) {
				return nil, err
			}
			rctx, b, rerr := c.renew(ctx, key, a, err)
			if rctx == nil {
				return nil, rerr
			}
			a, retried = b, true // the one retry of this call
			if cs, err = open(rctx); err != nil {
				return nil, err
			}
		}
		return &stream{c: c, ctx: ctx, key: key, open: open, cs: cs, a: a, retried: retried}, nil
	}
}

// stream is a client stream that can be opened again once, with another
// token, until its first message arrives.
type stream struct {
	c    *Credentials
	ctx  context.Context
	key  string
	open func(context.Context) (grpc.ClientStream, error)

	mu       sync.Mutex
	cs       grpc.ClientStream
	a        *attempt
	sent     []any // the messages sent, while they may be sent again
	closed   bool  // CloseSend was called
	received bool  // a message arrived: no more retries
	retried  bool
	tooMany  bool // more than maxReplay messages sent
}

func (s *stream) current() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs
}

func (s *stream) Header() (metadata.MD, error) { return s.current().Header() }
func (s *stream) Trailer() metadata.MD         { return s.current().Trailer() }
func (s *stream) Context() context.Context     { return s.current().Context() }

func (s *stream) CloseSend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return s.cs.CloseSend()
}

func (s *stream) SendMsg(m any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.received && !s.retried && !s.tooMany {
		if len(s.sent) < maxReplay {
			s.sent = append(s.sent, m)
		} else {
			s.tooMany, s.sent = true, nil
		}
	}
	return s.cs.SendMsg(m)
}

func (s *stream) RecvMsg(m any) error {
	for {
		cs := s.current()
		err := cs.RecvMsg(m)
		if err == nil {
			s.mu.Lock()
			s.received, s.sent = true, nil
			s.mu.Unlock()
			return nil
		}
		if err = s.retry(cs, err); err != nil {
			return err
		}
	}
}

// retry handles err, the error that cs's RecvMsg returned: if it is the
// server's rejection of the token, the engine replaces the token, and the
// stream is opened again if it may be (nil: receive again). Otherwise, or
// if reopening failed, it returns the error for the caller.
func (s *stream) retry(cs grpc.ClientStream, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs != s.cs || !s.a.rejected(err) {
		return err
	}
	rctx, b, rerr := s.c.renew(s.ctx, s.key, s.a, err)
	switch {
	case rctx == nil:
		return rerr
	case s.received || s.retried || s.tooMany:
		return err // the token is replaced for the next call
	}
	s.retried = true
	return s.reopen(rctx, b)
}

// reopen opens the stream again for attempt b and sends again what was
// sent. Called with s.mu held.
func (s *stream) reopen(ctx context.Context, b *attempt) error {
	cs, err := s.open(ctx)
	if err != nil {
		return err
	}
	s.cs, s.a = cs, b
	for _, m := range s.sent {
		if err := cs.SendMsg(m); err != nil {
			return err
		}
	}
	s.sent = nil
	if s.closed {
		return cs.CloseSend()
	}
	return nil
}
