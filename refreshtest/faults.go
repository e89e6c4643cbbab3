package refreshtest

import (
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

// fault answers a token request with f.Kind.
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
