package refreshtest

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	hugeBodySize   = 2 << 20
	slowBodyPeriod = 50 * time.Millisecond
)

// fault answers a token or revocation request with f.Kind.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, f Faults) {
	switch f.Kind {
	case FaultUnavailable, FaultTooManyRequests:
		status := http.StatusServiceUnavailable
		if f.Kind == FaultTooManyRequests {
			status = http.StatusTooManyRequests
		}
		if f.RetryAfter > 0 {
			secs := (f.RetryAfter + time.Second - 1) / time.Second
			w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, http.StatusText(status)+"\n")

	case FaultReset:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler) // closes the connection, at least
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST, not FIN
		}
		conn.Close()

	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		panic(http.ErrAbortHandler) // no answer at all, not an empty 200

	case FaultHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"+
			"<body><center><h1>502 Bad Gateway</h1></center><hr><center>refreshtest</center></body></html>\n")

	case FaultHugeBody:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(hugeBodySize))
		w.WriteHeader(http.StatusBadGateway)
		line := strings.Repeat("upstream error ", 68) + "\n"
		for n := 0; n < hugeBodySize; n += len(line) {
			chunk := line[:min(len(line), hugeBodySize-n)]
			if _, err := io.WriteString(w, chunk); err != nil {
				return // the client stopped reading
			}
		}

	case FaultSlowBody:
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		t := time.NewTicker(slowBodyPeriod)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-s.closing:
				panic(http.ErrAbortHandler) // the body must not end cleanly
			case <-t.C:
			}
			if _, err := io.WriteString(w, " "); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// A Fault is how an injected failure answers a token request.
type Fault int

const (
	// FaultUnavailable answers 503 Service Unavailable with a text body,
	// and Retry-After if Faults.RetryAfter is set.
	FaultUnavailable Fault = iota
	// FaultTooManyRequests answers 429 Too Many Requests with a text body,
	// and Retry-After if Faults.RetryAfter is set.
	FaultTooManyRequests
	// FaultReset closes the connection without an answer, with a TCP reset
	// where the platform allows it.
	FaultReset
	// FaultHang never answers: the request waits until the client gives up
	// or the server is closed. Use it to check the client's timeouts.
	FaultHang
	// FaultHTML answers 502 Bad Gateway with an HTML page, as a proxy in
	// front of the token endpoint does.
	FaultHTML
	// FaultHugeBody answers 502 Bad Gateway with a 2 MiB text body, for
	// clients that must cap what they read.
	FaultHugeBody
	// FaultSlowBody answers 200 OK with a JSON content type at once, then
	// sends a body of spaces, one byte every 50 ms, that never ends: a
	// client's timeout must cover reading the body, not only the headers.
	FaultSlowBody
)

func (f Fault) String() string {
	switch f {
	case FaultUnavailable:
		return "FaultUnavailable"
	case FaultTooManyRequests:
		return "FaultTooManyRequests"
	case FaultReset:
		return "FaultReset"
	case FaultHang:
		return "FaultHang"
	case FaultHTML:
		return "FaultHTML"
	case FaultHugeBody:
		return "FaultHugeBody"
	case FaultSlowBody:
		return "FaultSlowBody"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Faults inject failures into token requests and revocation requests
// (never into the protected API): the two endpoints are one server, failing
// together, and share one count of Rate. The zero value injects none.
type Faults struct {
	// Latency delays the handling of every token and revocation request.
	// A request whose client gives up during the delay is still handled
	// when it ends, as real servers do: a refresh can be granted, its
	// refresh token spent, without the client ever seeing the answer.
	Latency time.Duration

	// Rate is the share of requests answered with Kind rather than
	// handled, from 0 (none) to 1 (all). The choice is deterministic, in
	// order of arrival (token and revocation requests in one count): with
	// Rate 0.5 the 1st, 3rd, 5th… requests fail; with Rate 0.25 the 1st,
	// 5th, 9th…; [Server.SetFaults] starts the count again.
	Rate float64

	// Kind is the failure. Optional: the zero value is FaultUnavailable.
	Kind Fault

	// RetryAfter, if positive, is sent as Retry-After (in seconds, rounded
	// up) with FaultUnavailable and FaultTooManyRequests.
	RetryAfter time.Duration

	// AfterGrant handles a failing request first and then replaces its
	// answer with the fault: a refresh is granted (the refresh token spent,
	// the new tokens valid), or a token revoked, but the client never sees
	// it, as when a gateway times out or a connection drops after the
	// server committed. Optional: by default a failing request is not
	// handled at all.
	AfterGrant bool
}

func (f Faults) validate() error {
	switch {
	case f.Latency < 0:
		return fmt.Errorf("Faults.Latency is negative (%v)", f.Latency)
	case !(f.Rate >= 0 && f.Rate <= 1): // also catches NaN
		return fmt.Errorf("Faults.Rate %v is not between 0 and 1", f.Rate)
	case f.Kind < FaultUnavailable || f.Kind > FaultSlowBody:
		return fmt.Errorf("Faults.Kind %v is unknown", f.Kind)
	case f.RetryAfter < 0:
		return fmt.Errorf("Faults.RetryAfter is negative (%v)", f.RetryAfter)
	}
	return nil
}
