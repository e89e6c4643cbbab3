package pgstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// The listener's timing. None of it decides whether a Lock gets its lock,
// only how soon.
const (
	// slowPoll is the pause between the tries of a waiting Lock while the
	// listener is listening (or LockPoll, if longer): the notification of
	// an unlock wakes it sooner; the pause only catches the holders that
	// send none (a session that ended, a release from before
	// notifications).
	slowPoll = time.Second

	listenIdle     = 10 * time.Second       // without waiters, the listener stops after this
	listenTick     = time.Second            // how often it checks whether to stop or probe
	listenProbe    = 5 * time.Second        // with waiters and nothing heard for this long, it probes
	probeTimeout   = 2 * time.Second        // a probe not heard within this fails
	connectTimeout = 10 * time.Second       // for the listener's connection and LISTEN
	backoffMin     = 100 * time.Millisecond // pause before a new connection, doubling
	backoffMax     = 10 * time.Second       // up to this
)

// errIdle ends a listener session that stopped for want of waiters.
var errIdle = errors.New("pgstore: listener idle")

// A waiter is a Lock waiting for the lock id. wake, of capacity 1, gets a
// value when a notification for id arrives, or when the listener starts or
// stops listening.
type waiter struct {
	id   int64
	wake chan struct{}
}

// A listener is the one connection of a Store that LISTENs to its table's
// channel, and the table of the Store's waiters that the notifications
// wake. Its goroutine runs while there are waiters, and stops when there
// have been none for idle.
type listener struct {
	s       *Store
	channel string        // never changes
	listen  string        // the LISTEN statement; never changes
	idle    time.Duration // never changes

	mu        sync.Mutex
	waiters   map[int64]map[*waiter]struct{} // by lock id
	n         int                            // waiters
	idleSince time.Time                      // when n became 0
	running   bool                           // the goroutine runs
	listening bool                           // LISTEN is in effect and a probe was heard
	pid       uint32                         // the listening backend, when listening
	sessions  int                            // connections that listened, for tests
	failures  int                            // sessions that failed, for tests
}

// listener returns the Store's listener for the table ns, made on the
// first call.
func (s *Store) listener(ns string) *listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lis == nil {
		ch := channelName(ns)
		listen := ch
		if s.deaf {
			listen += "_deaf" // tests: notifications go elsewhere, as behind a transaction pooler
		}
		s.lis = &listener{s: s, channel: ch, listen: "LISTEN " + pgx.Identifier{listen}.Sanitize(),
			idle: s.listenIdle, waiters: map[int64]map[*waiter]struct{}{}}
	}
	return s.lis
}

// add registers a waiter for the lock id and starts the goroutine if it
// does not run.
func (l *listener) add(id int64) *waiter {
	w := &waiter{id: id, wake: make(chan struct{}, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiters[id] == nil {
		l.waiters[id] = map[*waiter]struct{}{}
	}
	l.waiters[id][w] = struct{}{}
	l.n++
	if !l.running {
		l.running = true
		go l.run()
	}
	return w
}

func (l *listener) remove(w *waiter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiters[w.id], w)
	if len(l.waiters[w.id]) == 0 {
		delete(l.waiters, w.id)
	}
	if l.n--; l.n == 0 {
		l.idleSince = time.Now()
	}
}

func (l *listener) isListening() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.listening
}

// setListening records whether the listener is listening, on backend pid,
// and wakes every waiter: to wait for notifications from now on, or,
// as some may have been lost, to try again and poll.
func (l *listener) setListening(on bool, pid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listening, l.pid = on, pid
	if on {
		l.sessions++
	}
	for _, ws := range l.waiters {
		for w := range ws {
			wake(w)
		}
	}
}

// stopIfIdle reports whether the goroutine is to stop, there having been
// no waiter for l.idle; if so the listener is stopped, and the next add
// starts a new goroutine.
func (l *listener) stopIfIdle() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 || time.Since(l.idleSince) < l.idle {
		return false
	}
	l.running, l.listening, l.pid = false, false, 0
	return true
}

func (l *listener) hasWaiters() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n > 0
}

// dispatch wakes the waiters of the lock id that n carries. Anyone may
// notify the channel: a payload that is not a lock id is ignored, and a
// wrong id costs its waiters one try.
func (l *listener) dispatch(n *pgconn.Notification) {
	if n == nil || n.Channel != l.channel {
		return
	}
	id, err := strconv.ParseInt(n.Payload, 10, 64)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range l.waiters[id] {
		wake(w)
	}
}

func wake(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default: // already woken
	}
}

// run is the listener's goroutine: one session after another, with a
// growing pause after each that fails, until the listener is idle.
func (l *listener) run() {
	backoff := backoffMin
	for {
		heard, err := l.session()
		if errors.Is(err, errIdle) {
			return
		}
		if heard {
			backoff = backoffMin
		}
		l.mu.Lock()
		l.failures++
		l.mu.Unlock()
		time.Sleep(backoff/2 + rand.N(backoff/2+1))
		if l.stopIfIdle() {
			return
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// session connects, LISTENs, and checks with a probe that notifications
// arrive; then it dispatches them until the connection fails (or a later
// probe does) or the listener is idle. heard reports whether the first
// probe was heard.
func (l *listener) session() (heard bool, err error) {
	conn, err := l.connect()
	if err != nil {
		return false, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
		defer cancel()
		conn.Close(ctx)
	}()
	if err := l.probe(conn); err != nil {
		return false, err
	}
	l.setListening(true, conn.PgConn().PID())
	err = l.serve(conn)
	if !errors.Is(err, errIdle) {
		l.setListening(false, 0)
	}
	return true, err
}

// connect opens the listener's connection as the pool opens its own (its
// configuration, BeforeConnect and AfterConnect), but outside the pool,
// which it would take a connection from for good, and LISTENs.
func (l *listener) connect() (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	pc := l.s.pool.Config()
	cc := pc.ConnConfig
	// pgx then keeps notifications for WaitForNotification.
	cc.OnNotification = nil
	// A tick ends a WaitForNotification with a deadline, never with a
	// cancel request (a connection to the server each time).
	cc.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	if pc.BeforeConnect != nil {
		if err := pc.BeforeConnect(ctx, cc); err != nil {
			return nil, err
		}
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, err
	}
	if pc.AfterConnect != nil {
		err = pc.AfterConnect(ctx, conn)
	}
	if err == nil {
		_, err = conn.Exec(ctx, l.listen)
	}
	if err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// probe notifies the channel through the pool, as a holder's unlock does,
// and waits for the notification on conn, dispatching others meanwhile.
// Behind a pooler that does not keep a session per connection (PgBouncer
// in transaction mode), or on a connection that died without a word, it
// never comes.
func (l *listener) probe(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	token := "probe " + strconv.FormatUint(rand.Uint64(), 16)
	err := l.s.retry(ctx, func() error {
		_, err := l.s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", l.channel, token)
		return err
	})
	for err == nil {
		var n *pgconn.Notification
		if n, err = conn.WaitForNotification(ctx); err == nil {
			if n.Channel == l.channel && n.Payload == token {
				return nil
			}
			l.dispatch(n)
		}
	}
	return err
}

// serve dispatches notifications until conn fails, a probe fails, or the
// listener is idle (errIdle). Every listenTick it checks for idleness, and
// probes if there are waiters and nothing was heard for listenProbe.
func (l *listener) serve(conn *pgx.Conn) error {
	heard := time.Now()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), listenTick)
		n, err := conn.WaitForNotification(ctx)
		tick := ctx.Err() != nil && !conn.IsClosed()
		cancel()
		switch {
		case err == nil:
			l.dispatch(n)
			heard = time.Now()
			continue
		case !tick:
			return err
		case l.stopIfIdle():
			return errIdle
		}
		if time.Since(heard) >= listenProbe && l.hasWaiters() {
			if err := l.probe(conn); err != nil {
				return err
			}
			heard = time.Now()
		}
	}
}
