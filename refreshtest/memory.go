package refreshtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
)

// Transport returns an http.RoundTripper that serves the server in memory,
// without a connection: a request to the host of URL goes to the protected
// API, one to the host of TokenURL to the token or the revocation endpoint,
// with the same checks, answers, faults, events and Stats as over the
// network. Each
// request is handled on a goroutine of its own, and the answer's body is
// streamed from it, so that FaultSlowBody and FaultHang behave as they do
// on a network; FaultReset, and a request abandoned by Close, make the
// round trip (or the read of the body, if it began) fail with a connection
// reset. A request to any other host fails. The server must still be
// closed.
//
// Use it where a network round trip does not fit: inside a testing/synctest
// bubble, whose fake clock stops while a goroutine waits for the network
// (Faults.Latency, Hold and FaultHang wait on channels made outside the
// bubble, so leave them out there), or as the Base of a client under test
// when the test must see, as soon as RoundTrip returns, what happened to
// the request.
func (s *Server) Transport() http.RoundTripper { return memTransport{s} }

type memTransport struct{ s *Server }

// errReset is what a reset connection looks like to a client.
var errReset = &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}

func (m memTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var h http.HandlerFunc
	switch r.URL.Host {
	case hostOf(m.s.api.URL):
		h = m.s.serveAPI
	case hostOf(m.s.token.URL):
		h = m.s.serveAuth
	}
	if h == nil || r.URL.Scheme != "http" {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("refreshtest: no server at %s://%s in memory", r.URL.Scheme, r.URL.Host)
	}

	// The request as a server sees it.
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	sr.RemoteAddr = "127.0.0.1:1"
	if sr.Host == "" {
		sr.Host = r.URL.Host
	}
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	pr, pw := io.Pipe()
	w := &memWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	go func() {
		defer func() {
			if r.Body != nil {
				r.Body.Close() // a RoundTripper closes the request's body
			}
			switch v := recover(); {
			case v != nil:
				// http.ErrAbortHandler (a reset, a hang ended by Close),
				// or a bug: a server would drop the connection.
				w.abort()
				pw.CloseWithError(errReset)
			case sr.Context().Err() != nil:
				w.WriteHeader(http.StatusOK)
				pw.CloseWithError(sr.Context().Err()) // the body did not end
			default:
				w.WriteHeader(http.StatusOK)
				pw.Close()
			}
		}()
		h(w, sr)
	}()

	select {
	case <-w.ready:
	case <-r.Context().Done():
		pr.CloseWithError(r.Context().Err()) // the handler's writes fail
		return nil, r.Context().Err()
	}
	if w.status == 0 {
		pr.Close()
		return nil, errReset
	}
	resp := &http.Response{
		Status:     strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode: w.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        w.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       r,
	}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	if r.Method == http.MethodHead {
		pr.Close()
		resp.Body = http.NoBody
	}
	return resp, nil
}

func hostOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Host
}

// memWriter is the http.ResponseWriter of an in-memory request: the status
// and header are handed to RoundTrip when the handler first writes or
// flushes, and the body is written to a pipe that the client reads.
type memWriter struct {
	header http.Header
	body   *io.PipeWriter

	once   sync.Once
	ready  chan struct{} // closed once status and sent are set
	status int           // 0: the handler gave up before answering
	sent   http.Header   // the header as it was when the answer began
}

func (w *memWriter) Header() http.Header { return w.header }

func (w *memWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status, w.sent = code, w.header.Clone()
		close(w.ready)
	})
}

// Write blocks until the client reads p, or fails once it closed the body.
func (w *memWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush sends the status and header; the body is unbuffered anyway.
func (w *memWriter) Flush() { w.WriteHeader(http.StatusOK) }

// abort ends a handler that has not answered: RoundTrip fails.
func (w *memWriter) abort() {
	w.once.Do(func() { close(w.ready) })
}
