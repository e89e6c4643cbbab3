package grpcrefresh_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/grpcrefresh"
	"github.com/oauthkit/refresh/refreshtest"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// world is a gRPC server (the health service) whose interceptors accept
// only the access tokens a refreshtest server accepts, and a client
// connection with an engine's credentials.
type world struct {
	srv     *refreshtest.Server
	engine  *refresh.Engine
	conn    *grpc.ClientConn
	client  healthpb.HealthClient
	health  *health.Server
	streams atomic.Int64 // Watch streams the server accepted
	tries   atomic.Int64 // Watch streams the server judged
	// rejectAll, if set, makes the server reject every stream's token.
	rejectAll atomic.Bool

	// before, if set, runs in the server's interceptor before the token
	// is judged.
	before func(ctx context.Context)
	// afterFirst, if set, makes a Watch stream fail with Unauthenticated
	// right after its first message.
	afterFirst atomic.Bool
}

func newWorld(t *testing.T, tokenClient *http.Client, o grpcrefresh.Options) *world {
	t.Helper()
	w := &world{srv: refreshtest.NewServer(refreshtest.Options{}), health: health.NewServer()}
	t.Cleanup(w.srv.Close)
	conf := w.srv.Config()
	ep := &refresh.FormEndpoint{TokenURL: w.srv.TokenURL, ClientID: conf.ClientID, ClientSecret: conf.ClientSecret,
		Auth: refresh.AuthInBody, HTTPClient: &http.Client{Transport: w.srv.Transport()}}
	if tokenClient != nil {
		ep.HTTPClient = tokenClient
	}
	var err error
	w.engine, err = refresh.New(refresh.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.engine.Close(context.Background()) })

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.UnaryInterceptor(w.unary), grpc.StreamInterceptor(w.stream))
	healthpb.RegisterHealthServer(gs, w.health)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)

	o.Insecure = true // bufconn: loopback in memory
	creds := grpcrefresh.New(w.engine, o)
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })},
		creds.DialOptions()...)
	w.conn, err = grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.conn.Close() })
	w.client = healthpb.NewHealthClient(w.conn)
	return w
}

// authorize judges the call's token as the refreshtest API does.
func (w *world) authorize(ctx context.Context) error {
	if w.before != nil {
		w.before(ctx)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) != 1 {
		return status.Error(codes.Unauthenticated, "no token")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.srv.URL+"/api", nil)
	req.Header.Set("Authorization", auth[0])
	resp, err := w.srv.Transport().RoundTrip(req)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return status.Error(codes.Unauthenticated, "invalid_token")
	}
	return nil
}

func (w *world) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := w.authorize(ctx); err != nil {
		return nil, err
	}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("deny")) > 0 {
		return nil, status.Error(codes.PermissionDenied, "not yours")
	}
	return h(ctx, req)
}

func (w *world) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	w.tries.Add(1)
	if w.rejectAll.Load() {
		return status.Error(codes.Unauthenticated, "invalid_token")
	}
	if err := w.authorize(ss.Context()); err != nil {
		return err
	}
	w.streams.Add(1)
	if w.afterFirst.Load() {
		// One message, then the rejection, as a server that found the
		// token revoked meanwhile.
		if err := ss.SendMsg(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
		return status.Error(codes.Unauthenticated, "invalid_token")
	}
	return h(srv, ss)
}

func (w *world) login(t *testing.T) {
	t.Helper()
	if err := w.engine.SetToken(context.Background(), "", w.srv.Token()); err != nil {
		t.Fatal(err)
	}
}

func (w *world) check(ctx context.Context) error {
	_, err := w.client.Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestStorm: 1,000 concurrent calls after the server revoked the access
// token: one refresh, and every call succeeds.
func TestStorm(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	if err := w.check(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.srv.RevokeAccessTokens()
	const calls = 1000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range calls {
		wg.Go(func() {
			if err := w.check(t.Context()); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	st := w.srv.Stats()
	t.Logf("storm of %d calls: %d refreshes, %d failed, %d API checks (%d rejected), %d reuses", calls, st.Refreshes, failed.Load(), st.APIRequests, st.Served401, st.Reuses)
	if st.Refreshes != 1 || failed.Load() != 0 || st.Reuses != 0 {
		t.Errorf("%d refreshes, %d failed calls, %d reuses; want 1, 0, 0", st.Refreshes, failed.Load(), st.Reuses)
	}
}

// TestLateUnauthenticated: a call rejected after another call's refresh
// rotated the token is retried with the new token, without a second
// refresh.
func TestLateUnauthenticated(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w.before = func(ctx context.Context) {
		if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("slow")) > 0 {
			once.Do(func() { close(arrived); <-release })
		}
	}
	done := make(chan error)
	go func() { done <- w.check(metadata.AppendToOutgoingContext(t.Context(), "slow", "1")) }()
	<-arrived // the slow call holds the first token
	w.srv.RevokeAccessTokens()
	if err := w.check(t.Context()); err != nil {
		t.Fatalf("fast call: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("late-rejected call: %v; want success with the rotated token", err)
	}
	if st := w.srv.Stats(); st.Refreshes != 1 {
		t.Errorf("%d refreshes; want 1", st.Refreshes)
	}
}

// TestStreamRetry: a stream rejected before its first message is opened
// again with a new token; one rejected after it is not.
func TestStreamRetry(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	w.srv.RevokeAccessTokens()
	s, err := w.client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := s.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first message of a stream rejected before it: %v, %v; want SERVING", m, err)
	}
	if st := w.srv.Stats(); st.Refreshes != 1 || w.streams.Load() != 1 {
		t.Errorf("%d refreshes, %d streams accepted; want 1 and 1", st.Refreshes, w.streams.Load())
	}

	w.afterFirst.Store(true)
	s, err = w.client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("first message: %v", err)
	}
	if _, err := s.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("after a message: %v; want the server's Unauthenticated, not retried", err)
	}
	// The rejection still replaced the token, for the next call.
	if n, st := w.streams.Load(), w.srv.Stats(); n != 2 || st.Refreshes != 2 {
		t.Errorf("%d streams accepted, %d refreshes; want 2 (the second not opened again) and 2", n, st.Refreshes)
	}
}

// TestStreamRetriedOnce: a stream whose every token is rejected is opened
// twice in all, never more.
func TestStreamRetriedOnce(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	w.rejectAll.Store(true)
	s, err := w.client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("%v; want the server's Unauthenticated", err)
	}
	if n := w.tries.Load(); n != 2 {
		t.Errorf("the server judged %d streams; want 2 (one retry)", n)
	}
}

// TestPermissionDenied never refreshes.
func TestPermissionDenied(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	err := w.check(metadata.AppendToOutgoingContext(t.Context(), "deny", "1"))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("%v; want PermissionDenied", err)
	}
	if st := w.srv.Stats(); st.Refreshes != 0 {
		t.Errorf("%d refreshes; want 0", st.Refreshes)
	}
}

// TestReauthRequired: a refused refresh token reaches the caller as
// refresh.ErrReauthRequired (errors.Is), with the server's status; a key
// with no token at all fails with the engine's error, not as a rejection.
func TestReauthRequired(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{})
	w.login(t)
	w.srv.RevokeAccessTokens()
	w.srv.RefuseRefreshTokens("invalid_grant", "Refresh token has expired or is invalid.")
	err := w.check(t.Context())
	if !errors.Is(err, refresh.ErrReauthRequired) || status.Code(err) != codes.Unauthenticated {
		t.Fatalf("%v; want ErrReauthRequired and codes.Unauthenticated", err)
	}
	err = w.check(refresh.WithKey(t.Context(), "nobody"))
	var x *refresh.Error
	if !errors.Is(err, refresh.ErrReauthRequired) || !errors.As(err, &x) || x.Key != "nobody" {
		t.Fatalf("call for a key with no token: %v; want the engine's ErrReauthRequired for nobody", err)
	}
	if st := w.srv.Stats(); st.Refreshes != 0 || st.InvalidGrant != 1 {
		t.Errorf("%d refreshes, %d refused; want 0 and 1", st.Refreshes, st.InvalidGrant)
	}
}

// gate holds the token requests while closed.
type gate struct {
	rt      http.RoundTripper
	arrived chan struct{}
	release chan struct{}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	g.arrived <- struct{}{}
	<-g.release
	return g.rt.RoundTrip(r)
}

// TestCancelledCaller: a caller cancelled while the refresh runs gets its
// context's error; the refresh goes on and the other caller's call
// succeeds, with one refresh.
func TestCancelledCaller(t *testing.T) {
	g := &gate{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	var w *world
	w = newWorld(t, &http.Client{Transport: g}, grpcrefresh.Options{})
	g.rt = w.srv.Transport()
	w.login(t)
	w.srv.RevokeAccessTokens()
	ctx, cancel := context.WithCancel(t.Context())
	first := make(chan error)
	go func() { first <- w.check(ctx) }()
	<-g.arrived // the refresh is in flight, for the first caller
	second := make(chan error)
	go func() { second <- w.check(t.Context()) }()
	cancel()
	if err := <-first; status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v; want its context's error", err)
	}
	close(g.release)
	if err := <-second; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if st := w.srv.Stats(); st.Refreshes != 1 || st.Reuses != 0 {
		t.Errorf("%d refreshes, %d reuses; want 1 and 0", st.Refreshes, st.Reuses)
	}
}

// TestNoUnaryRetry: with NoUnaryRetry a rejected call is not sent again,
// but its token is replaced, so the next call succeeds.
func TestNoUnaryRetry(t *testing.T) {
	w := newWorld(t, nil, grpcrefresh.Options{NoUnaryRetry: true})
	w.login(t)
	w.srv.RevokeAccessTokens()
	if err := w.check(t.Context()); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("%v; want the server's Unauthenticated, not retried", err)
	}
	if err := w.check(t.Context()); err != nil {
		t.Fatalf("next call: %v", err)
	}
	if st := w.srv.Stats(); st.Refreshes != 1 || st.Served401 != 1 {
		t.Errorf("%d refreshes, %d rejected checks; want 1 and 1", st.Refreshes, st.Served401)
	}
}

// TestRequiresTransportSecurity: without Options.Insecure the token never
// goes over a connection without transport security.
func TestRequiresTransportSecurity(t *testing.T) {
	engine, err := refresh.New(refresh.Config{Endpoint: refresh.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, errors.New("unused")
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer engine.Close(context.Background())
	creds := grpcrefresh.New(engine, grpcrefresh.Options{})
	if !creds.RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity false by default")
	}
	_, err = grpc.NewClient("passthrough:///x", append(creds.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err == nil {
		t.Fatal("a client without transport security accepted the credentials")
	}
}
