package refresh_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/oauthkit/refresh"

	"golang.org/x/oauth2"
)

// Memory per key, measured as a user would: SetToken for each of n keys
// (1-hour tokens with 64-byte access and 48-byte refresh tokens), then the
// live heap after a GC, divided by n. Side by side, the same tokens in a
// plain map and in one golang.org/x/oauth2 Transport per key.
//
//	go test -run '^$' -bench BenchmarkMemoryPerKey -benchtime 1x

var memorySizes = []int{10_000, 100_000, 1_000_000}

func BenchmarkMemoryPerKey(b *testing.B) {
	for _, n := range memorySizes {
		b.Run(fmt.Sprintf("engine/keys=%d", n), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(bytesPerKey(n, engineOf), "B/key")
			}
		})
		b.Run(fmt.Sprintf("map/keys=%d", n), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(bytesPerKey(n, mapOf), "B/key")
			}
		})
		b.Run(fmt.Sprintf("x-oauth2/keys=%d", n), func(b *testing.B) {
			for range b.N {
				b.ReportMetric(bytesPerKey(n, xoauth2Of), "B/key")
			}
		})
	}
}

// memKey and memToken are the i-th key and a new copy of its token.
func memKey(i int) string { return fmt.Sprintf("user-%07d", i) }

func memToken(i int, expiry time.Time) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  fmt.Sprintf("at-%061d", i), // 64 bytes
		RefreshToken: fmt.Sprintf("rt-%045d", i), // 48 bytes
		TokenType:    "Bearer",
		Expiry:       expiry,
	}
}

// bytesPerKey returns the live heap that holding n keys' tokens in
// whatever fill builds costs, per key.
func bytesPerKey(n int, fill func(n int, expiry time.Time) any) float64 {
	expiry := time.Now().Add(time.Hour)
	before := liveHeap()
	held := fill(n, expiry)
	after := liveHeap()
	runtime.KeepAlive(held)
	return float64(int64(after)-int64(before)) / float64(n)
}

func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func engineOf(n int, expiry time.Time) any {
	e, err := refresh.New(refresh.Config{Endpoint: refresh.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		panic("no refresh in this measurement")
	})})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for i := range n {
		if err := e.SetToken(ctx, memKey(i), memToken(i, expiry)); err != nil {
			panic(err)
		}
	}
	return e
}

func mapOf(n int, expiry time.Time) any {
	m := make(map[string]*oauth2.Token)
	for i := range n {
		m[memKey(i)] = memToken(i, expiry)
	}
	return m
}

func xoauth2Of(n int, expiry time.Time) any {
	conf := &oauth2.Config{ClientID: "client-id", Endpoint: oauth2.Endpoint{TokenURL: "https://auth.example.com/token", AuthStyle: oauth2.AuthStyleInParams}}
	ctx := context.Background()
	m := make(map[string]http.RoundTripper)
	for i := range n {
		m[memKey(i)] = conf.Client(ctx, memToken(i, expiry)).Transport
	}
	return m
}
