package gateway

import "sync/atomic"

// DefaultMaxInflightBytes is the budget of bytes in flight when Options
// set none. The server picks its own default from the machine's memory.
const DefaultMaxInflightBytes = 512 << 20

// budget bounds the bytes the gateway holds for responses it has not
// stored yet: the bodies of misses being collected for the backend while
// they stream to their client. A response whose share it cannot grant
// streams on without being stored, so the memory misses take is bounded
// however many clients ask for however large bodies. It never blocks.
//
// The zero value grants nothing; use newBudget.
type budget struct {
	limit int64
	used  atomic.Int64
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// acquire takes n bytes from the budget and reports whether it could; on
// false nothing was taken.
func (b *budget) acquire(n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit || used+n < used {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// release gives back n bytes taken with acquire.
func (b *budget) release(n int64) {
	if n > 0 {
		b.used.Add(-n)
	}
}

// InflightBytes returns how many bytes of the in-flight budget are taken
// now: bodies of misses being read for the backend and not yet stored.
func (g *Gateway) InflightBytes() int64 { return g.inflight.used.Load() }
