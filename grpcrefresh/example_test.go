package grpcrefresh_test

import (
	"context"
	"fmt"
	"net"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/grpcrefresh"
	"github.com/oauthkit/refresh/refreshtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"
)

// A gRPC client whose calls carry the engine's token. The server here
// accepts any call; with a real one, use TLS transport credentials and
// leave Options.Insecure false.
func ExampleNew() {
	srv := refreshtest.NewServer(refreshtest.Options{})
	defer srv.Close()
	engine, err := refresh.New(refresh.Config{OAuth2: srv.Config()})
	if err != nil {
		panic(err)
	}
	defer engine.Close(context.Background())
	engine.SetToken(context.Background(), "", srv.Token())

	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	defer gs.Stop()

	creds := grpcrefresh.New(engine, grpcrefresh.Options{Insecure: true}) // in-memory connection
	conn, err := grpc.NewClient("passthrough:///bufnet", append(creds.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.Status)
	// Output: SERVING
}
