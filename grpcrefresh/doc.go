// Package grpcrefresh gives gRPC clients the tokens of a [refresh.Engine]:
// per-RPC credentials, and interceptors that refresh the token when the
// server answers codes.Unauthenticated and retry the call once.
//
//	creds := grpcrefresh.New(engine, grpcrefresh.Options{Key: "billing"})
//	conn, err := grpc.NewClient(addr,
//		grpc.WithTransportCredentials(credentials.NewTLS(nil)),
//		creds.DialOptions()...)
//
// The interceptors obtain the token themselves, with the call's context,
// and hand it to the credentials through that context. So an error of the
// engine (re-authentication required, token endpoint down) comes back from
// the call as the engine returned it, for errors.Is and errors.As, and is
// never taken for the server's rejection: gRPC would otherwise turn an
// error of the credentials into an Unauthenticated status with the error
// as text. Only an Unauthenticated answer to a call that carried the
// token refreshes it, through [refresh.Engine.Refresh] with the rejected
// token, so that a token already replaced by another call is not
// refreshed again. codes.PermissionDenied never refreshes.
//
// A unary call is retried once (Options.NoUnaryRetry turns it off for
// calls that are not idempotent); a stream only if no message was received
// on it yet, by opening it again and sending again the messages sent so far
// (at most 16, else it is not retried).
package grpcrefresh
