package grpcrefresh

import (
	"context"

	"google.golang.org/grpc"
)

// UnaryClientInterceptor returns the interceptor that sends each unary
// call with the key's token and, if the server rejects it with
// codes.Unauthenticated, has the engine replace the token and sends the
// call once more (unless Options.NoUnaryRetry).
func (c *Credentials) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		key := c.key(ctx)
		actx, a, err := c.start(ctx, key)
		if err != nil {
			return err
		}
		err = invoker(actx, method, req, reply, cc, opts...)
		if !a.rejected(err) {
			return err
		}
		rctx, _, rerr := c.renew(ctx, key, a, err)
		if rctx == nil {
			return rerr
		}
		if c.opts.NoUnaryRetry {
			return err
		}
		return invoker(rctx, method, req, reply, cc, opts...)
	}
}
