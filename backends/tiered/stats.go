package tiered

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Counters for metrics, read at each scrape without the tier's locks.

// HotEvictions returns how many entries the hot tier evicted to stay
// within its size: entries that left memory, not the persistent backend.
func (b *Backend) HotEvictions() int64 { return b.items.Evictions() }

// flushBuckets is the number of buckets of the flush latency histogram:
// bucket i holds batches that took less than flushBucketBase << i, the
// last one the rest. 64 µs to about 4 s covers a batch of one on a fast
// disk to a stalled disk.
const (
	flushBuckets    = 18
	flushBucketBase = 64 * time.Microsecond
)

// flushStats counts the background writer's batches.
type flushStats struct {
	batches, entries, nanos atomic.Int64
	buckets                 [flushBuckets]atomic.Int64
}

func (s *flushStats) record(took time.Duration, entries int) {
	s.batches.Add(1)
	s.entries.Add(int64(entries))
	s.nanos.Add(int64(took))
	i := 0
	if took >= flushBucketBase {
		// The smallest i with took < base<<i.
		i = min(bits.Len64(uint64(took/flushBucketBase)), flushBuckets-1)
	}
	s.buckets[i].Add(1)
}

// FlushStats describes the batches the write-behind writer stored in the
// persistent backend, in the shape of a Prometheus histogram.
type FlushStats struct {
	Batches uint64  // batches stored (or failed)
	Entries uint64  // entries in them
	Seconds float64 // time the batches took in all
	// Buckets maps an upper bound in seconds to the number of batches
	// that took at most that long (cumulative, the last bound open).
	Buckets map[float64]uint64
}

// FlushStats returns the write-behind writer's batches so far; ok is
// false when write-behind is off.
func (b *Backend) FlushStats() (s FlushStats, ok bool) {
	if !b.behind {
		return FlushStats{}, false
	}
	f := &b.flushes
	s = FlushStats{
		Entries: uint64(f.entries.Load()),
		Seconds: time.Duration(f.nanos.Load()).Seconds(),
		Buckets: make(map[float64]uint64, flushBuckets-1),
	}
	var count uint64
	for i := range f.buckets {
		count += uint64(f.buckets[i].Load())
		if i < flushBuckets-1 {
			s.Buckets[(flushBucketBase << i).Seconds()] = count
		}
	}
	// Batches is the histogram's count, read with its buckets, so that
	// the +Inf bucket is never below the last bound.
	s.Batches = count
	return s, true
}
