package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthkit/refresh"
	"github.com/oauthkit/refresh/internal/caps"
)

// ErrInjected is the error of an injected failure whose [Fault] names no
// error of its own.
var ErrInjected = errors.New("storetest: injected store failure")

// An Op is a store operation that [Faults] can fail.
type Op int

const (
	OpLoad           Op = iota // TokenStore.Load
	OpSave                     // TokenStore.Save
	OpCompareAndSwap           // CompareAndSwapper.CompareAndSwap
	OpLock                     // Locker.Lock
	OpUnlock                   // the unlock function Locker.Lock (or TryLocker.TryLock) returned
	OpTryLock                  // TryLocker.TryLock
	OpDelete                   // Deleter.Delete
	numOps
)

func (op Op) String() string {
	switch op {
	case OpLoad:
		return "Load"
	case OpSave:
		return "Save"
	case OpCompareAndSwap:
		return "CompareAndSwap"
	case OpLock:
		return "Lock"
	case OpUnlock:
		return "Unlock"
	case OpTryLock:
		return "TryLock"
	case OpDelete:
		return "Delete"
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// A FaultKind is what an injected fault does to a call.
type FaultKind int

const (
	// FaultNone lets the call through; with Fault.Delay or Fault.Gate it
	// only makes the call wait first.
	FaultNone FaultKind = iota
	// FaultError fails the call without reaching the store.
	FaultError
	// FaultErrorAfter makes the call reach the store, succeed there, and
	// then report an error: a save that committed although its caller saw
	// it fail (a lost reply, a timeout after the commit). A Lock so failed
	// is released at once, as a lease its holder never learned of expires.
	FaultErrorAfter
	// FaultPanic panics without reaching the store.
	FaultPanic
	// FaultPanicAfter makes the call reach the store, succeed there, and
	// then panic. A Lock so failed is released first.
	FaultPanicAfter
	numKinds
)

func (k FaultKind) String() string {
	switch k {
	case FaultNone:
		return "None"
	case FaultError:
		return "Error"
	case FaultErrorAfter:
		return "ErrorAfter"
	case FaultPanic:
		return "Panic"
	case FaultPanicAfter:
		return "PanicAfter"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// A Fault is one injected failure: the next call of Op (for Key, if set)
// waits for Delay and Gate, then fails as Kind says.
//
// An unlock cannot fail (see [refresh.Locker]): on OpUnlock, FaultError and
// FaultErrorAfter release the lock and report nothing, and FaultPanic and
// FaultPanicAfter release it, then panic.
type Fault struct {
	Op   Op
	Kind FaultKind
	// Key restricts the fault to calls for this key. Optional: empty
	// means any key.
	Key string
	// Err is the error of FaultError and FaultErrorAfter. Optional: nil
	// means ErrInjected.
	Err error
	// Delay makes the call wait this long first, or until its context
	// ends (then the call fails with the context's error). Optional.
	Delay time.Duration
	// Gate, if set, makes the call wait until Gate is closed, or until its
	// context ends. Optional.
	Gate <-chan struct{}
	// Reached, if set, receives one value when a call takes this fault,
	// before it waits: a test learns that the call has arrived. The send
	// blocks; give the channel room if nobody receives. Optional.
	Reached chan<- struct{}
}

// Random injects faults at random into the calls no scripted fault takes.
// Each rate is the probability, from 0 to 1, that one call gets that fault;
// they are drawn in the order the fields are listed, and a call gets at most
// one fault besides a delay.
type Random struct {
	// Seed makes the sequence of faults repeatable for the same sequence
	// of calls.
	Seed uint64
	// Ops are the operations that may fail. Optional: nil means all.
	Ops []Op

	Error, ErrorAfter, Panic, PanicAfter float64

	// Delay is the rate of calls that wait first, a random time of up to
	// MaxDelay.
	Delay    float64
	MaxDelay time.Duration
}

// FaultStats counts the calls a [Faults] saw and the faults it injected.
type FaultStats struct {
	// Calls counts the calls of each Op.
	Calls [numOps]int
	// Injected counts the faults injected into each Op, by kind; a
	// delay alone counts as FaultNone.
	Injected [numOps][numKinds]int
}

// Total returns the number of faults injected into op that were not mere
// delays.
func (s FaultStats) Total(op Op) int {
	n := 0
	for k := FaultError; k < numKinds; k++ {
		n += s.Injected[op][k]
	}
	return n
}

// Faults injects failures, panics and delays into the stores it wraps, in
// the order a test scripts them or at random. Its zero value injects nothing
// and is ready to use; it is safe for concurrent use.
//
//	var f storetest.Faults
//	store := f.Wrap(filestore.New(dir))
//	f.Script(storetest.Fault{Op: storetest.OpCompareAndSwap, Kind: storetest.FaultPanic})
//	// the next CompareAndSwap panics; every other call goes through
//
// A panic's value is a string naming the operation, never a token.
type Faults struct {
	mu     sync.Mutex // protects every field below
	script []Fault
	random Random
	rng    *rand.Rand // nil when no random faults are set
	stats  FaultStats
}

// Script appends faults to the script. Each call takes the first scripted
// fault that matches its Op and key, which is then used up; calls that no
// fault matches go through, or take a random fault.
func (f *Faults) Script(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, faults...)
}

// SetRandom replaces the random faults; the zero Random turns them off.
func (f *Faults) SetRandom(r Random) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.random = r
	f.rng = nil
	if r.Error > 0 || r.ErrorAfter > 0 || r.Panic > 0 || r.PanicAfter > 0 || r.Delay > 0 && r.MaxDelay > 0 {
		f.rng = rand.New(rand.NewPCG(r.Seed, r.Seed^0x9e3779b97f4a7c15))
	}
}

// Clear drops the scripted faults not used yet and the random ones.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = nil
	f.random, f.rng = Random{}, nil
}

// Pending returns how many scripted faults are not used yet.
func (f *Faults) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.script)
}

// Stats returns the counts so far.
func (f *Faults) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Wrap returns s with the faults injected into its calls. The result has
// exactly the capabilities of s: it is a [refresh.Locker], a
// [refresh.TryLocker], a [refresh.CompareAndSwapper] or a [refresh.Deleter]
// when s is.
func (f *Faults) Wrap(s refresh.TokenStore) refresh.TokenStore {
	w := &faultyStore{f: f, s: s}
	var m caps.Methods
	if l, ok := s.(refresh.Locker); ok {
		m.Lock = func(ctx context.Context, key string) (func(), error) { return w.lock(l, ctx, key) }
	}
	if t, ok := s.(refresh.TryLocker); ok {
		m.TryLock = func(ctx context.Context, key string) (func(), bool, error) { return w.tryLock(t, ctx, key) }
	}
	if c, ok := s.(refresh.CompareAndSwapper); ok {
		m.CompareAndSwap = func(ctx context.Context, key string, old, new *oauth2.Token) error {
			return w.compareAndSwap(c, ctx, key, old, new)
		}
	}
	if d, ok := s.(refresh.Deleter); ok {
		m.Delete = func(ctx context.Context, key string) error { return w.delete(d, ctx, key) }
	}
	return caps.With(w, m)
}

// next decides the fault of one call of op for key.
func (f *Faults) next(op Op, key string) Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Calls[op]++
	for i, ft := range f.script {
		if ft.Op == op && (ft.Key == "" || ft.Key == key) {
			f.script = append(f.script[:i:i], f.script[i+1:]...)
			f.count(ft)
			return ft
		}
	}
	ft := f.draw(op)
	f.count(ft)
	return ft
}

// count records ft. Called with mu held.
func (f *Faults) count(ft Fault) {
	if ft.Kind != FaultNone || ft.Delay > 0 || ft.Gate != nil {
		f.stats.Injected[ft.Op][ft.Kind]++
	}
}

// draw picks a random fault for op. Called with mu held.
func (f *Faults) draw(op Op) Fault {
	ft := Fault{Op: op}
	r := f.random
	if f.rng == nil || r.Ops != nil && !containsOp(r.Ops, op) {
		return ft
	}
	if r.Delay > 0 && r.MaxDelay > 0 && f.rng.Float64() < r.Delay {
		ft.Delay = time.Duration(f.rng.Int64N(int64(r.MaxDelay)) + 1)
	}
	x := f.rng.Float64()
	for _, c := range [...]struct {
		rate float64
		kind FaultKind
	}{{r.Error, FaultError}, {r.ErrorAfter, FaultErrorAfter}, {r.Panic, FaultPanic}, {r.PanicAfter, FaultPanicAfter}} {
		if x < c.rate {
			ft.Kind = c.kind
			break
		}
		x -= c.rate
	}
	return ft
}

func containsOp(ops []Op, op Op) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}
