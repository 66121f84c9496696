package gateway

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// HistoryLen is how many one-second samples the history keeps: 20
// minutes, so a chart of the last 15 always has its whole window.
//
// Memory bound: the ring is allocated once, HistoryLen samples of
// (upstreams + 1) points of pointSize bytes each, plus per upstream two
// cumulative latency histograms and their previous copies (4 x
// histBuckets x 8 bytes); nothing grows with traffic. With one upstream
// that is about 0.3 MB, with ten about 1.5 MB.
const HistoryLen = 1200

// Point is one upstream's (or all upstreams') traffic in one second.
// Latencies are in milliseconds, from a histogram with buckets 19% wide
// at most, 0 when the second had no such answer.
type Point struct {
	Requests       int64   `json:"requests,omitempty"`
	Hits           int64   `json:"hits,omitempty"`
	Misses         int64   `json:"misses,omitempty"`
	Stale          int64   `json:"stale,omitempty"`
	Revalidated    int64   `json:"revalidated,omitempty"`
	Coalesced      int64   `json:"coalesced,omitempty"`
	Bypass         int64   `json:"bypass,omitempty"`
	Errors         int64   `json:"errors,omitempty"`
	BytesFromCache int64   `json:"bytes_from_cache,omitempty"`
	SavedMs        float64 `json:"saved_ms,omitempty"`
	HitP50Ms       float64 `json:"hit_p50_ms,omitempty"`
	HitP99Ms       float64 `json:"hit_p99_ms,omitempty"`
	MissP50Ms      float64 `json:"miss_p50_ms,omitempty"`
	MissP99Ms      float64 `json:"miss_p99_ms,omitempty"`
}

// pointSize is the in-memory size of a Point, for the stated bound.
const pointSize = 14 * 8

// HitRatio is the share of the point's cacheable answers that came from
// the cache.
func (p Point) HitRatio() float64 { return hitRatio(p.Hits, p.Stale, p.Misses, p.Revalidated) }

// add sums the counts of o into p; latencies are not summable and stay.
func (p *Point) add(o Point) {
	p.Requests += o.Requests
	p.Hits += o.Hits
	p.Misses += o.Misses
	p.Stale += o.Stale
	p.Revalidated += o.Revalidated
	p.Coalesced += o.Coalesced
	p.Bypass += o.Bypass
	p.Errors += o.Errors
	p.BytesFromCache += o.BytesFromCache
	p.SavedMs += o.SavedMs
}

// Sample is one second of history: the total and each upstream's point.
type Sample struct {
	// Time is the end of the second the sample covers.
	Time      time.Time        `json:"time"`
	Total     Point            `json:"total"`
	Upstreams map[string]Point `json:"upstreams,omitempty"`
}

// Window sums the samples of the last d (up to now) into one point, with
// the hit ratio of that window; d longer than the history covers what the
// history holds.
type Window struct {
	Point
	Seconds  int     `json:"seconds"` // samples summed
	HitRatio float64 `json:"hit_ratio"`
}

// history is the ring of samples. Tick, on the gateway's timer, is its
// only writer; the request path never touches it (it only adds to the
// cumulative counters and histograms that Tick differences).
type history struct {
	names []string

	mu   sync.Mutex // protects the fields below
	ring []ringSample
	next int    // where the next sample goes
	n    int    // samples held, at most len(ring)
	seq  uint64 // samples taken so far: the latest is seq
	prev []prevState
}

// ringSample holds a sample's points in names order, the total last.
type ringSample struct {
	t   time.Time
	pts []Point
}

// prevState is what an upstream's cumulative figures were at the last
// tick.
type prevState struct {
	v         CounterValues
	hit, miss [histBuckets]int64
}

func (h *history) init(names []string) {
	h.names = names
	h.ring = make([]ringSample, HistoryLen)
	for i := range h.ring {
		h.ring[i].pts = make([]Point, len(names)+1)
	}
	h.prev = make([]prevState, len(names))
}

// grow makes room for one more upstream, zero in every sample held
// (callers hold mu). Its point goes after the others, before the total.
func (h *history) grow(name string) {
	n := len(h.names)
	h.names = append(h.names[:n:n], name)
	for i := range h.ring {
		pts := make([]Point, n+2)
		copy(pts, h.ring[i].pts[:n])
		pts[n+1] = h.ring[i].pts[n]
		h.ring[i].pts = pts
	}
	h.prev = append(h.prev, prevState{})
}

// Tick takes the sample of the second ending at now: what was counted
// since the previous tick (the first holds everything before it). The
// gateway ticks once at start and then every second.
func (s *Stats) Tick(now time.Time) Sample {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	rs := &h.ring[h.next]
	rs.t = now
	total := &rs.pts[len(h.names)]
	*total = Point{}
	var hitAll, missAll [histBuckets]int64
	counters := *s.counters.Load()
	for i, name := range h.names {
		c := counters[name]
		v := c.Values()
		p := &h.prev[i]
		var hit, miss [histBuckets]int64
		c.hitLatency.load(&hit)
		c.missLatency.load(&miss)
		var dh, dm [histBuckets]int64
		for b := range hit {
			dh[b], dm[b] = hit[b]-p.hit[b], miss[b]-p.miss[b]
			hitAll[b] += dh[b]
			missAll[b] += dm[b]
		}
		pt := Point{
			Requests: v.Requests - p.v.Requests, Hits: v.Hits - p.v.Hits, Misses: v.Misses - p.v.Misses,
			Stale: v.Stale - p.v.Stale, Revalidated: v.Revalidated - p.v.Revalidated,
			Coalesced: v.Coalesced - p.v.Coalesced, Bypass: v.Bypass - p.v.Bypass, Errors: v.Errors - p.v.Errors,
			BytesFromCache: v.BytesFromCache - p.v.BytesFromCache,
			SavedMs:        float64(v.SavedNanos-p.v.SavedNanos) / 1e6,
			HitP50Ms:       quantileMs(&dh, 0.50), HitP99Ms: quantileMs(&dh, 0.99),
			MissP50Ms: quantileMs(&dm, 0.50), MissP99Ms: quantileMs(&dm, 0.99),
		}
		rs.pts[i] = pt
		total.add(pt)
		p.v, p.hit, p.miss = v, hit, miss
	}
	total.HitP50Ms, total.HitP99Ms = quantileMs(&hitAll, 0.50), quantileMs(&hitAll, 0.99)
	total.MissP50Ms, total.MissP99Ms = quantileMs(&missAll, 0.50), quantileMs(&missAll, 0.99)
	h.next = (h.next + 1) % len(h.ring)
	if h.n < len(h.ring) {
		h.n++
	}
	h.seq++
	return h.sample(rs)
}

// sample copies a ring slot out (callers hold mu).
func (h *history) sample(rs *ringSample) Sample {
	out := Sample{Time: rs.t, Total: rs.pts[len(h.names)], Upstreams: make(map[string]Point, len(h.names))}
	for i, name := range h.names {
		out.Upstreams[name] = rs.pts[i]
	}
	return out
}

// at returns the i-th held sample, oldest first (callers hold mu).
func (h *history) at(i int) *ringSample {
	return &h.ring[(h.next-h.n+i+len(h.ring))%len(h.ring)]
}

// History returns the samples held, oldest first.
func (s *Stats) History() []Sample {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Sample, h.n)
	for i := range out {
		out[i] = h.sample(h.at(i))
	}
	return out
}

// Since returns the samples taken after the seq-th one, oldest first, and
// the seq of the latest: a client that has seen up to seq asks for what
// it missed. A seq older than the history gets all of it.
func (s *Stats) Since(seq uint64) ([]Sample, uint64) {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq >= h.seq {
		return nil, h.seq
	}
	k := min(h.seq-seq, uint64(h.n))
	out := make([]Sample, 0, k)
	for i := h.n - int(k); i < h.n; i++ {
		out = append(out, h.sample(h.at(i)))
	}
	return out, h.seq
}

// Window sums the total over the samples of the last d before now: the
// hit ratio of the last minute, say. Samples older than d are left out.
func (s *Stats) Window(now time.Time, d time.Duration) Window {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	var w Window
	from := now.Add(-d)
	for i := h.n - 1; i >= 0; i-- {
		rs := h.at(i)
		if !rs.t.After(from) {
			break
		}
		if rs.t.After(now) {
			continue
		}
		w.add(rs.pts[len(h.names)])
		w.Seconds++
	}
	w.HitRatio = w.Point.HitRatio()
	return w
}

// Latest returns the newest sample and its seq (0 when none yet).
func (s *Stats) Latest() (Sample, uint64) {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return Sample{}, 0
	}
	return h.sample(h.at(h.n - 1)), h.seq
}

// histBuckets is the size of a latency histogram: microseconds, exact
// below 8, then four buckets per power of two, up to about 70 minutes.
const histBuckets = 8 + 30*4

// histogram counts latencies in log-scaled buckets with atomic adds: the
// request path pays one add. It is cumulative; Tick differences it.
type histogram struct{ b [histBuckets]atomic.Int64 }

func (h *histogram) observe(d time.Duration) { h.b[bucketOf(d)].Add(1) }

func (h *histogram) load(out *[histBuckets]int64) {
	for i := range h.b {
		out[i] = h.b[i].Load()
	}
}

// bucketOf maps a latency to its bucket: values below 8 µs each have
// their own, then each power of two is split in four by the two bits
// after the leading one, so a bucket is at most 25% wider than its lower
// bound.
func bucketOf(d time.Duration) int {
	us := uint64(max(d.Microseconds(), 0))
	if us < 8 {
		return int(us)
	}
	e := bits.Len64(us) - 1 // >= 3
	sub := int(us>>(e-2)) & 3
	i := 8 + (e-3)*4 + sub
	return min(i, histBuckets-1)
}

// bucketMid is the middle of bucket i, in microseconds.
func bucketMid(i int) float64 {
	if i < 8 {
		return float64(i)
	}
	e := (i-8)/4 + 3
	sub := (i - 8) % 4
	lo := float64(uint64(4+sub) << (e - 2))
	width := float64(uint64(1) << (e - 2))
	return lo + width/2
}

// quantileMs is the q-quantile of the counts in ms, 0 for none.
func quantileMs(b *[histBuckets]int64, q float64) float64 {
	var n int64
	for _, c := range b {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n-1)) + 1 // 1-based rank of the q-quantile
	var seen int64
	for i, c := range b {
		seen += c
		if seen >= rank {
			return bucketMid(i) / 1000
		}
	}
	return bucketMid(histBuckets-1) / 1000
}
