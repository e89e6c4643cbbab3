package tokenwire

import (
	"errors"
	"io"
)

// MaxBody is the most a token response body may hold; a longer one is an error.
const MaxBody = 1 << 20

// ErrTooLarge is returned by [ReadBody] for a body longer than [MaxBody].
var ErrTooLarge = errors.New("token response larger than 1 MiB")

// ReadBody reads at most MaxBody bytes of r; if r holds more it returns
// ErrTooLarge (and what it read is discarded). It does not close r.
//
// To tell a body of exactly MaxBody bytes from a longer one it reads one byte
// past the limit, so an endless or huge body costs no more than that. As with
// [io.ReadAll], a read error is returned together with the bytes read before it.
func ReadBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if len(b) > MaxBody {
		return nil, ErrTooLarge
	}
	return b, err
}
