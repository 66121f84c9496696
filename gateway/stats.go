package gateway

import (
	"sync"
	"sync/atomic"
	"time"
)

// Counters are one upstream's running totals. Every field is updated with
// atomic adds on the request path: no lock is taken to count.
type Counters struct {
	Requests          atomic.Int64
	Hits              atomic.Int64
	Misses            atomic.Int64
	Stale             atomic.Int64
	Revalidated       atomic.Int64
	Bypass            atomic.Int64
	Errors            atomic.Int64
	BytesFromCache    atomic.Int64
	BytesFromUpstream atomic.Int64
	UpstreamNanos     atomic.Int64 // time spent waiting for upstream answers
	UpstreamCalls     atomic.Int64
	CacheNanos        atomic.Int64 // from arrival to answer, of the requests answered from the cache
	CacheAnswers      atomic.Int64
}

// CounterValues is a snapshot of Counters with derived figures.
type CounterValues struct {
	Requests          int64 `json:"requests"`
	Hits              int64 `json:"hits"`
	Misses            int64 `json:"misses"`
	Stale             int64 `json:"stale"`
	Revalidated       int64 `json:"revalidated"`
	Bypass            int64 `json:"bypass"`
	Errors            int64 `json:"errors"`
	BytesFromCache    int64 `json:"bytes_from_cache"`
	BytesFromUpstream int64 `json:"bytes_from_upstream"`
	UpstreamCalls     int64 `json:"upstream_calls"`
	UpstreamNanos     int64 `json:"upstream_ns"`
	CacheAnswers      int64 `json:"cache_answers"`
	CacheNanos        int64 `json:"cache_ns"`
	// HitRatio is (hits + stale) / (hits + stale + misses + revalidated);
	// bypassed requests do not count.
	HitRatio float64 `json:"hit_ratio"`
	// AvgUpstreamMs and AvgCacheMs are mean answer times.
	AvgUpstreamMs float64 `json:"avg_upstream_ms"`
	AvgCacheMs    float64 `json:"avg_cache_ms"`
	// TimeSavedMs estimates the upstream time cache answers spared clients:
	// answers from cache times (mean upstream time - mean cache time).
	TimeSavedMs float64 `json:"time_saved_ms"`
}

// Values returns a snapshot of c.
func (c *Counters) Values() CounterValues {
	v := CounterValues{
		Requests: c.Requests.Load(), Hits: c.Hits.Load(), Misses: c.Misses.Load(),
		Stale: c.Stale.Load(), Revalidated: c.Revalidated.Load(), Bypass: c.Bypass.Load(),
		Errors: c.Errors.Load(), BytesFromCache: c.BytesFromCache.Load(),
		BytesFromUpstream: c.BytesFromUpstream.Load(), UpstreamCalls: c.UpstreamCalls.Load(),
		UpstreamNanos: c.UpstreamNanos.Load(), CacheAnswers: c.CacheAnswers.Load(), CacheNanos: c.CacheNanos.Load(),
	}
	v.derive()
	return v
}

func (v *CounterValues) derive() {
	served := v.Hits + v.Stale
	if total := served + v.Misses + v.Revalidated; total > 0 {
		v.HitRatio = float64(served) / float64(total)
	}
	if v.UpstreamCalls > 0 {
		v.AvgUpstreamMs = float64(v.UpstreamNanos) / float64(v.UpstreamCalls) / 1e6
	}
	if v.CacheAnswers > 0 {
		v.AvgCacheMs = float64(v.CacheNanos) / float64(v.CacheAnswers) / 1e6
	}
	if saved := v.AvgUpstreamMs - v.AvgCacheMs; saved > 0 {
		v.TimeSavedMs = saved * float64(served)
	}
}

func (v *CounterValues) add(o CounterValues) {
	v.Requests += o.Requests
	v.Hits += o.Hits
	v.Misses += o.Misses
	v.Stale += o.Stale
	v.Revalidated += o.Revalidated
	v.Bypass += o.Bypass
	v.Errors += o.Errors
	v.BytesFromCache += o.BytesFromCache
	v.BytesFromUpstream += o.BytesFromUpstream
	v.UpstreamCalls += o.UpstreamCalls
	v.UpstreamNanos += o.UpstreamNanos
	v.CacheAnswers += o.CacheAnswers
	v.CacheNanos += o.CacheNanos
}

// Snapshot is the state of every upstream's counters at one time.
type Snapshot struct {
	Time      time.Time                `json:"time"`
	Upstreams map[string]CounterValues `json:"upstreams"`
	Total     CounterValues            `json:"total"`
}

// Stats holds the counters of every upstream and a short history of
// snapshots for charts.
type Stats struct {
	counters map[string]*Counters // fixed at construction: read without a lock

	mu      sync.Mutex // protects history
	history []Snapshot // oldest first, at most historyLen
}

// historyLen snapshots are kept: at the default interval of 5 s, the last
// 10 minutes.
const historyLen = 120

// NewStats returns counters for the named upstreams.
func NewStats(upstreams ...string) *Stats {
	s := &Stats{counters: make(map[string]*Counters, len(upstreams))}
	for _, u := range upstreams {
		s.counters[u] = &Counters{}
	}
	return s
}

// Upstream returns the counters of one upstream, nil if unknown.
func (s *Stats) Upstream(name string) *Counters { return s.counters[name] }

// Snapshot returns the current values.
func (s *Stats) Snapshot() Snapshot {
	snap := Snapshot{Time: time.Now(), Upstreams: make(map[string]CounterValues, len(s.counters))}
	for name, c := range s.counters {
		v := c.Values()
		snap.Upstreams[name] = v
		snap.Total.add(v)
	}
	snap.Total.derive()
	return snap
}

// Record appends the current values to the history, dropping the oldest
// beyond its length. The gateway calls it on a timer.
func (s *Stats) Record() Snapshot {
	snap := s.Snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.history) == historyLen {
		copy(s.history, s.history[1:])
		s.history = s.history[:historyLen-1]
	}
	s.history = append(s.history, snap)
	return snap
}

// History returns the recorded snapshots, oldest first.
func (s *Stats) History() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Snapshot(nil), s.history...)
}
