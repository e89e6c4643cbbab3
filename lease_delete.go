package refresh

import "context"

// A DeletingLeaseLocker is a [LeaseLocker] over a store that can also
// delete: it is a [Deleter] too, for [Engine.Logout]. A LeaseLocker itself
// has no Delete, since the store it wraps may have none and the engine
// finds capabilities by type assertion.
type DeletingLeaseLocker struct {
	*LeaseLocker
	deleter Deleter // the store, as a Deleter
}

var _ interface {
	TryLocker
	CompareAndSwapper
	Deleter
} = (*DeletingLeaseLocker)(nil)

// NewDeletingLeaseLocker is [NewLeaseLocker] for a store that is also a
// [Deleter].
func NewDeletingLeaseLocker(store interface {
	CompareAndSwapper
	Deleter
}, opts LeaseOptions) (*DeletingLeaseLocker, error) {
	l, err := NewLeaseLocker(store, opts)
	if err != nil {
		return nil, err
	}
	return &DeletingLeaseLocker{LeaseLocker: l, deleter: store}, nil
}

// Delete implements [Deleter]: it deletes key's token from the store, under
// the token's name there (see [LeaseLocker], "Names"), and so carries the
// store's promise: a holder of the lock that saves after it, by
// CompareAndSwap, is refused.
//
// The lease record stays. Deleting it under a holder would let a waiter
// take the lock as a free one (by CompareAndSwap from nothing) while the
// holder still runs, so that two processes refresh at once.
func (l *DeletingLeaseLocker) Delete(ctx context.Context, key string) error {
	return l.deleter.Delete(ctx, tokenName(key))
}
