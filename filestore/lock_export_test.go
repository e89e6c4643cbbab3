//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package filestore

// SetMaxBlockedFlocks sets how many blocking flock calls may wait at once
// in this process, resets the peak that BlockedFlocks reports, and returns
// a func that restores the bound.
func SetMaxBlockedFlocks(n int) (restore func()) {
	flockSlots.mu.Lock()
	defer flockSlots.mu.Unlock()
	old := maxBlockedFlocks
	maxBlockedFlocks = n
	flockSlots.peak = flockSlots.used
	return func() {
		flockSlots.mu.Lock()
		maxBlockedFlocks = old
		flockSlots.mu.Unlock()
	}
}

// BlockedFlocks reports how many blocking flock calls are in progress,
// abandoned ones included, and the most there were at once since the last
// SetMaxBlockedFlocks.
func BlockedFlocks() (now, peak int) {
	flockSlots.mu.Lock()
	defer flockSlots.mu.Unlock()
	return flockSlots.used, flockSlots.peak
}

// PollingWaits reports how many waits for a lock are polling in this
// process, for want of a blocking flock slot.
func PollingWaits() int {
	flockSlots.mu.Lock()
	defer flockSlots.mu.Unlock()
	return flockSlots.poll
}
