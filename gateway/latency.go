package gateway

import "time"

// LatencyCounts are the counts of one upstream's answer-time histograms,
// one per outcome, indexed as Outcomes. Bucket i holds the answers of at
// least LatencyLowerBound(i) and less than LatencyLowerBound(i+1); the
// last is open.
type LatencyCounts [len(Outcomes)][histBuckets]int64

// LatencyBuckets is the number of buckets in LatencyCounts.
const LatencyBuckets = histBuckets

// LatencyLowerBound is the least answer time bucket i counts. Powers of
// two of a microsecond (8 µs and up) are bucket bounds, so a coarser
// histogram on them can be summed exactly from these counts.
func LatencyLowerBound(i int) time.Duration {
	if i < 8 {
		return time.Duration(i) * time.Microsecond
	}
	e := (i-8)/4 + 3
	sub := (i - 8) % 4
	return time.Duration(uint64(4+sub)<<(e-2)) * time.Microsecond
}

// LatencyMid is the middle of bucket i, for an estimated sum.
func LatencyMid(i int) time.Duration {
	return time.Duration(bucketMid(i) * float64(time.Microsecond))
}

// Latencies returns the answer-time histograms of upstream since start;
// ok is false for an upstream the gateway does not know.
func (s *Stats) Latencies(upstream string) (LatencyCounts, bool) {
	c := s.Upstream(upstream)
	if c == nil {
		return LatencyCounts{}, false
	}
	var out LatencyCounts
	for o := range out {
		if o == outcomeHit {
			c.hitLatency.load(&out[o])
		} else {
			c.latency[o].load(&out[o])
		}
	}
	return out, true
}

// InFlight is the number of upstream calls under way that other
// requests for the same key may join (coalescing).
func (g *Gateway) InFlight() int {
	g.flights.mu.Lock()
	defer g.flights.mu.Unlock()
	return len(g.flights.m)
}
