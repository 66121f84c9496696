package tiered

import "time"

// OnWait sets a function that a Put calls when it starts waiting for its
// write, so that tests can tell a Put that waits from one not yet run.
func OnWait(b *Backend, f func()) {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.testHookWait = f
}

// SetNow replaces the tier's clock, so that tests step past the TTL
// instead of sleeping through it.
func SetNow(b *Backend, now func() time.Time) { b.now = now }
