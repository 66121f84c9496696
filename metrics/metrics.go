// Package metrics exposes the gateway's counters to Prometheus. It is the
// one package that imports client_golang.
//
// Nothing here runs on the request path: the gateway already counts every
// answer, whichever door (net/http or the fast lane) gave it, with atomic
// adds (gateway.Stats), and a scrape reads those counters. A scrape costs
// the gateway what reading a few hundred atomics costs, however high the
// request rate. Label values are bounded: upstream and backend names come
// from the configuration, outcomes and job states are fixed lists; no URL
// or key is ever a label.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/jobs"
)

// Options are what the metrics are read from.
type Options struct {
	Gateway *gateway.Gateway
	// Backends are the open backends by name, each once (no aliases).
	Backends map[string]cache.Backend
	Jobs     *jobs.Registry // may be nil
	// BackendRefresh is how long a backend's entry count and size are
	// reused (default 30s): counting is an aggregation in MongoDB, so a
	// scrape must not count each time.
	BackendRefresh time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler returns the /metrics handler: the gateway's series, the Go
// runtime's and the process's, in the Prometheus text format.
func Handler(o Options) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newCollector(o),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	requestsDesc = prometheus.NewDesc("cachegate_requests_total",
		"Requests through /fetch/ answered, by upstream, method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or other) and cache outcome (hit, miss, coalesced: a miss answered by another request's upstream call, stale, revalidated, bypass, error).",
		[]string{"upstream", "method", "outcome"}, nil)
	durationDesc = prometheus.NewDesc("cachegate_response_duration_seconds",
		"Time from a request's arrival to its answer, by upstream and outcome (as cachegate_requests_total's). The sum is estimated from the buckets' middles.",
		[]string{"upstream", "outcome"}, nil)
	upstreamCallsDesc = prometheus.NewDesc("cachegate_upstream_requests_total",
		"Requests the gateway sent to the upstream.", []string{"upstream"}, nil)
	upstreamSecondsDesc = prometheus.NewDesc("cachegate_upstream_request_seconds_total",
		"Time spent waiting for the upstream's answers; divided by cachegate_upstream_requests_total, the mean upstream latency.",
		[]string{"upstream"}, nil)
	upstreamErrorsDesc = prometheus.NewDesc("cachegate_upstream_errors_total",
		"Failed upstream exchanges by kind: refused (no connection: refused, reset, DNS), timeout, 5xx (the upstream answered 500 or more), cut_body (the body ended early).",
		[]string{"upstream", "kind"}, nil)
	bytesDesc = prometheus.NewDesc("cachegate_response_bytes_total",
		"Body bytes sent to clients, by where they came from (cache or upstream).", []string{"upstream", "source"}, nil)
	savedDesc = prometheus.NewDesc("cachegate_upstream_time_saved_seconds_total",
		"For each hit, how long the upstream took to answer the fetch of the entry it served: the upstream time the cache spared.",
		[]string{"upstream"}, nil)
	inFlightDesc = prometheus.NewDesc("cachegate_inflight_upstream_calls",
		"Upstream calls under way that requests for the same key join instead of calling again.", nil, nil)
	entriesDesc = prometheus.NewDesc("cachegate_backend_entries",
		"Entries stored in the backend (counted at most every backend refresh interval).", []string{"backend"}, nil)
	storedDesc = prometheus.NewDesc("cachegate_backend_bytes",
		"Body bytes stored in the backend (counted at most every backend refresh interval).", []string{"backend"}, nil)
	backendUpDesc = prometheus.NewDesc("cachegate_backend_up",
		"1 when the backend answered its last count, 0 when it failed.", []string{"backend"}, nil)
	queuedDesc = prometheus.NewDesc("cachegate_writebehind_queued_entries",
		"Misses answered from memory whose write to the backend is still queued (write-behind).", []string{"backend"}, nil)
	queuedBytesDesc = prometheus.NewDesc("cachegate_writebehind_queued_bytes",
		"Body bytes of the queued write-behind writes.", []string{"backend"}, nil)
	evictionsDesc = prometheus.NewDesc("cachegate_backend_evictions_total",
		"Entries the backend evicted to stay under its size cap (memory, or SQLite with a max size).", []string{"backend"}, nil)
	hotEvictionsDesc = prometheus.NewDesc("cachegate_hot_tier_evictions_total",
		"Entries the in-memory tier in front of the backend evicted to stay within its size; they stay in the backend.", []string{"backend"}, nil)
	purgedDesc = prometheus.NewDesc("cachegate_backend_purged_total",
		"Expired entries removed from the backend by purge-expired.", []string{"backend"}, nil)
	flushDesc = prometheus.NewDesc("cachegate_writebehind_flush_duration_seconds",
		"Time the write-behind writer took to store one batch of queued writes in the backend; the count is the batches stored.", []string{"backend"}, nil)
	flushedDesc = prometheus.NewDesc("cachegate_writebehind_flushed_entries_total",
		"Entries the write-behind writer stored in the backend, in its batches.", []string{"backend"}, nil)
	jobsDesc = prometheus.NewDesc("cachegate_jobs",
		"Admin jobs (bulk revalidate, copy, move) the registry holds, by state.", []string{"state"}, nil)
	reloadsDesc = prometheus.NewDesc("cachegate_config_reloads_total",
		"Configuration reloads (SIGHUP, POST /api/reload) by result: ok, or error (the running configuration stayed).", []string{"result"}, nil)
	loadedDesc = prometheus.NewDesc("cachegate_config_loaded_timestamp_seconds",
		"When the upstream rules in force were loaded, at start or by the last reload that succeeded (Unix time).", nil, nil)
)

// collector reads the gateway's counters at each scrape.
type collector struct {
	o Options

	mu      sync.Mutex
	totals  map[string]backendTotals
	counted time.Time
}

type backendTotals struct {
	t  cache.Totals
	ok bool
}

func newCollector(o Options) *collector {
	if o.BackendRefresh <= 0 {
		o.BackendRefresh = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &collector{o: o}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, durationDesc, upstreamCallsDesc, upstreamSecondsDesc, upstreamErrorsDesc,
		bytesDesc, savedDesc, inFlightDesc, entriesDesc, storedDesc, backendUpDesc, queuedDesc, queuedBytesDesc,
		evictionsDesc, hotEvictionsDesc, purgedDesc, flushDesc, flushedDesc, jobsDesc, reloadsDesc, loadedDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gw := c.o.Gateway
	st := gw.Stats()
	snap := st.Snapshot()
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	for name, v := range snap.Upstreams {
		counter(upstreamCallsDesc, float64(v.UpstreamCalls), name)
		counter(upstreamSecondsDesc, float64(v.UpstreamNanos)/1e9, name)
		counter(bytesDesc, float64(v.BytesFromCache), name, "cache")
		counter(bytesDesc, float64(v.BytesFromUpstream), name, "upstream")
		counter(savedDesc, float64(v.SavedNanos)/1e9, name)
		if c := st.Upstream(name); c != nil {
			// Each request is counted once, as it ends: the series add up
			// to the requests answered.
			answered := c.Answered()
			for m, method := range gateway.Methods {
				for o, outcome := range gateway.Outcomes {
					if n := answered[m][o]; n > 0 || m == 0 {
						counter(requestsDesc, float64(n), name, method, outcome)
					}
				}
			}
			for i, kind := range gateway.UpstreamErrorKinds {
				counter(upstreamErrorsDesc, float64(c.UpstreamErrors[i].Load()), name, kind)
			}
		}
		if lat, ok := st.Latencies(name); ok {
			for o, outcome := range gateway.Outcomes {
				ch <- histogram(&lat[o], name, outcome)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(inFlightDesc, prometheus.GaugeValue, float64(gw.InFlight()))
	conf := gw.ConfigStatus()
	counter(reloadsDesc, float64(conf.Reloads), "ok")
	counter(reloadsDesc, float64(conf.ReloadErrors), "error")
	ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, float64(conf.LoadedAt.UnixNano())/1e9)
	for name, t := range c.backendTotals() {
		up := 0.0
		if t.ok {
			up = 1
			ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(t.t.Entries), name)
			ch <- prometheus.MustNewConstMetric(storedDesc, prometheus.GaugeValue, float64(t.t.Bytes), name)
		}
		ch <- prometheus.MustNewConstMetric(backendUpDesc, prometheus.GaugeValue, up, name)
	}
	for name, b := range c.o.Backends {
		// The hot tier's queue, read live: two loads under its lock.
		if q, ok := b.(interface{ Queued() (int, int64) }); ok {
			n, bytes := q.Queued()
			ch <- prometheus.MustNewConstMetric(queuedDesc, prometheus.GaugeValue, float64(n), name)
			ch <- prometheus.MustNewConstMetric(queuedBytesDesc, prometheus.GaugeValue, float64(bytes), name)
		}
		// The counters below are atomics the backends keep as they go.
		if e, ok := counterOf[cache.EvictionCounter](b); ok {
			counter(evictionsDesc, float64(e.Evictions()), name)
		}
		if h, ok := b.(interface{ HotEvictions() int64 }); ok {
			counter(hotEvictionsDesc, float64(h.HotEvictions()), name)
		}
		if p, ok := counterOf[cache.PurgeCounter](b); ok {
			counter(purgedDesc, float64(p.Purged()), name)
		}
		if f, ok := b.(interface {
			FlushStats() (tiered.FlushStats, bool)
		}); ok {
			if fs, on := f.FlushStats(); on {
				ch <- prometheus.MustNewConstHistogram(flushDesc, fs.Batches, fs.Seconds, fs.Buckets, name)
				counter(flushedDesc, float64(fs.Entries), name)
			}
		}
	}
	if c.o.Jobs != nil {
		byState := map[jobs.State]int{jobs.Running: 0, jobs.Done: 0, jobs.Failed: 0, jobs.Cancelled: 0}
		for _, j := range c.o.Jobs.List() {
			byState[j.State]++
		}
		for s, n := range byState {
			ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), string(s))
		}
	}
}

// histogramBounds are the upper bounds of the exported buckets: the
// powers of two of a microsecond from 8 µs to about 8 s, which are bounds
// of the gateway's finer buckets too, so each count is exact.
var histogramBounds = func() []float64 {
	var b []float64
	for us := 8; us <= 1<<23; us *= 2 {
		b = append(b, float64(us)/1e6)
	}
	return b
}()

// histogram folds the gateway's fine buckets into histogramBounds.
func histogram(fine *[gateway.LatencyBuckets]int64, upstream, outcome string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(histogramBounds))
	var count uint64
	var sum float64
	next := 0 // the first exported bound not yet passed
	for i, n := range fine {
		// Bucket i ends where bucket i+1 starts; the last is open.
		if i+1 < len(fine) {
			upper := gateway.LatencyLowerBound(i + 1).Seconds()
			for next < len(histogramBounds) && histogramBounds[next] < upper {
				buckets[histogramBounds[next]] = count
				next++
			}
		}
		count += uint64(n)
		sum += float64(n) * gateway.LatencyMid(i).Seconds()
	}
	for ; next < len(histogramBounds); next++ {
		buckets[histogramBounds[next]] = count
	}
	return prometheus.MustNewConstHistogram(durationDesc, count, sum, buckets, upstream, outcome)
}

// backendTotals returns each backend's entries and bytes, counting again
// when the last count is older than BackendRefresh. A scrape that counts
// waits at most two seconds per backend.
func (c *collector) backendTotals() map[string]backendTotals {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.o.Now()
	if c.totals != nil && now.Sub(c.counted) < c.o.BackendRefresh {
		return c.totals
	}
	out := make(map[string]backendTotals, len(c.o.Backends))
	for name, b := range c.o.Backends {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t, err := b.Count(ctx, cache.Filter{})
		cancel()
		out[name] = backendTotals{t: t, ok: err == nil}
	}
	c.totals, c.counted = out, now
	return out
}

// counterOf returns b as the counter T or, when b wraps another backend
// (a tier wraps its persistent one), the first backend down the chain
// that keeps it. A wrapper does not claim the counters itself: one that
// answered 0 for a backend that counts nothing would be believed.
func counterOf[T any](b cache.Backend) (T, bool) {
	for {
		if c, ok := any(b).(T); ok {
			return c, true
		}
		u, ok := b.(interface{ Unwrap() cache.Backend })
		if !ok {
			var none T
			return none, false
		}
		b = u.Unwrap()
	}
}
