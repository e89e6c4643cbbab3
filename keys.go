package refresh

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// keyTable maps keys to their entries. Lookups take no lock and allocate
// nothing: the hot path's one table read. Writers (a key's first use, its
// removal) serialize on mu. It is an open-addressing hash table of atomic
// pointers, about 14 bytes per key where a sync.Map node costs ~100: at a
// million keys that is most of the difference to a plain map.
//
// A lookup may miss a key that a writer is moving (a removal's tombstone
// reused, a resize): lookups that miss take mu and look again (find).
type keyTable struct {
	seed  maphash.Seed
	slots atomic.Pointer[[]atomic.Pointer[entry]] // length a power of 2; replaced whole on resize

	mu   sync.Mutex // serializes writers
	live int        // entries in slots; guarded by mu
	dead int        // tombstones in slots; guarded by mu
}

// tombstone marks a removed entry's slot, so that lookups probe past it.
var tombstone = new(entry)

func newKeyTable() *keyTable {
	return &keyTable{seed: maphash.MakeSeed()}
}

// load returns the entry of key, or nil. It takes no lock.
func (t *keyTable) load(key string) *entry {
	sp := t.slots.Load()
	if sp == nil {
		return nil
	}
	s := *sp
	mask := uint64(len(s) - 1)
	for i := maphash.String(t.seed, key) & mask; ; i = (i + 1) & mask {
		switch ent := s[i].Load(); {
		case ent == nil:
			return nil
		case ent != tombstone && ent.key == key:
			return ent
		}
	}
}

// find is load for a caller that must not miss a key a writer is moving.
func (t *keyTable) find(key string) *entry {
	if ent := t.load(key); ent != nil {
		return ent
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.load(key)
}

// loadOrStore returns the entry of key, storing ent for it if it has none.
func (t *keyTable) loadOrStore(key string, ent *entry) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.load(key); old != nil {
		return old
	}
	// Keep at least a quarter of the slots empty, so that every probe
	// ends at an empty slot soon.
	if sp := t.slots.Load(); sp == nil || 4*(t.live+t.dead+1) > 3*len(*sp) {
		t.resize()
	}
	s := *t.slots.Load()
	mask := uint64(len(s) - 1)
	for i := maphash.String(t.seed, key) & mask; ; i = (i + 1) & mask {
		switch cur := s[i].Load(); cur {
		case tombstone:
			t.dead--
			fallthrough
		case nil:
			ent.key = key
			s[i].Store(ent)
			t.live++
			return ent
		}
	}
}

// remove takes ent out of the table, if it is there.
func (t *keyTable) remove(ent *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sp := t.slots.Load()
	if sp == nil {
		return
	}
	s := *sp
	mask := uint64(len(s) - 1)
	for i := maphash.String(t.seed, ent.key) & mask; ; i = (i + 1) & mask {
		switch cur := s[i].Load(); cur {
		case nil:
			return
		case ent:
			s[i].Store(tombstone)
			t.live--
			t.dead++
			if len(s) > 8 && 8*t.live < len(s) {
				t.resize() // give back the memory of keys gone
			}
			return
		}
	}
}

// resize moves the entries to new slots, twice as many as there are
// entries (at least 8), dropping the tombstones. Lookups still reading the
// old slots find what was there; the old slots are not written any more.
// Called with mu held.
func (t *keyTable) resize() {
	n := 8
	for n < 2*(t.live+1) {
		n *= 2
	}
	s := make([]atomic.Pointer[entry], n)
	mask := uint64(n - 1)
	t.each(func(ent *entry) {
		i := maphash.String(t.seed, ent.key) & mask
		for s[i].Load() != nil {
			i = (i + 1) & mask
		}
		s[i].Store(ent)
	})
	t.slots.Store(&s)
	t.dead = 0
}

// each calls f for every entry in the table. Entries stored or removed
// meanwhile may be seen or not.
func (t *keyTable) each(f func(*entry)) {
	sp := t.slots.Load()
	if sp == nil {
		return
	}
	for i := range *sp {
		if ent := (*sp)[i].Load(); ent != nil && ent != tombstone {
			f(ent)
		}
	}
}

// len returns the number of entries.
func (t *keyTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}
