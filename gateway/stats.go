package gateway

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Counters are one upstream's running totals. Every field is updated with
// atomic adds on the request path: no lock is taken to count. The totals
// by outcome (hits, misses...) are sums of byMethod.
type Counters struct {
	Requests          atomic.Int64
	BytesFromCache    atomic.Int64
	BytesFromUpstream atomic.Int64
	UpstreamNanos     atomic.Int64 // time spent waiting for upstream answers
	UpstreamCalls     atomic.Int64
	CacheNanos        atomic.Int64 // from arrival to answer, of the requests answered from the cache
	CacheAnswers      atomic.Int64
	// SavedNanos sums, over the hits, what fetching each hit entry from
	// the upstream cost when it was stored (see fetchLatency).
	SavedNanos atomic.Int64

	// UpstreamErrors counts failed upstream exchanges by kind
	// (UpstreamErrorKinds): every call, the fetches of misses, admin
	// revalidations and pass-throughs alike.
	UpstreamErrors [len(UpstreamErrorKinds)]atomic.Int64

	// hitLatency and missLatency are the answer times of hits and of
	// upstream answers, for the history's percentiles.
	hitLatency, missLatency histogram
	rules                   ruleCounts

	// byMethod counts the requests answered by method and outcome, and
	// latency times the answers of each outcome but hits (hitLatency
	// times those). Both are counted in ended, once per request, so the
	// outcomes add up to the requests answered.
	byMethod [len(Methods)][len(Outcomes)]atomic.Int64
	latency  [len(Outcomes)]histogram
}

// Outcomes name what the gateway did with a request, as metrics label
// it: the X-Cache values in lower case, with coalesced (a miss answered
// by another request's upstream call) apart from miss.
var Outcomes = [...]string{"hit", "miss", "coalesced", "stale", "revalidated", "bypass", "error"}

const (
	outcomeHit = iota
	outcomeMiss
	outcomeCoalesced
	outcomeStale
	outcomeRevalidated
	outcomeBypass
	outcomeError
)

// Methods are the request methods metrics tell apart; "other" stands for
// every other token, so that the label's values stay bounded.
var Methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	}
	return len(Methods) - 1
}

// outcomeOf is the index in Outcomes of the X-Cache value xcache ("ERROR"
// for an answer of the gateway's own); a miss answered by another
// request's call is coalesced.
func outcomeOf(xcache string, coalesced bool) int {
	switch xcache {
	case Hit:
		return outcomeHit
	case Miss:
		if coalesced {
			return outcomeCoalesced
		}
		return outcomeMiss
	case Stale:
		return outcomeStale
	case Revalidated:
		return outcomeRevalidated
	case Bypass:
		return outcomeBypass
	}
	return outcomeError
}

// ended counts a request answered with the X-Cache outcome xcache, by
// method, in took (0 for a hit, timed by countHit).
func (c *Counters) ended(method, xcache string, coalesced bool, took time.Duration) {
	o := outcomeOf(xcache, coalesced)
	c.byMethod[methodIndex(method)][o].Add(1)
	if o != outcomeHit {
		c.latency[o].observe(took)
	}
}

// Answered returns the requests answered so far by method and outcome,
// indexed as Methods and Outcomes.
func (c *Counters) Answered() (n [len(Methods)][len(Outcomes)]int64) {
	for m := range c.byMethod {
		for o := range c.byMethod[m] {
			n[m][o] = c.byMethod[m][o].Load()
		}
	}
	return n
}

// UpstreamErrorKinds name the kinds of failed upstream exchange, for
// metrics: no connection (refused, reset, DNS), a timeout, a 5xx answer,
// a body cut off before its end.
var UpstreamErrorKinds = [...]string{"refused", "timeout", "5xx", "cut_body"}

const (
	errRefused = iota
	errTimeout
	err5xx
	errCutBody
)

// countUpstreamError counts a failed round trip by its kind.
func (c *Counters) countUpstreamError(err *UpstreamError) {
	if err.Timeout {
		c.UpstreamErrors[errTimeout].Add(1)
	} else {
		c.UpstreamErrors[errRefused].Add(1)
	}
}

// CounterValues is a snapshot of Counters with derived figures.
type CounterValues struct {
	Requests          int64 `json:"requests"`
	Hits              int64 `json:"hits"`
	Misses            int64 `json:"misses"`
	Stale             int64 `json:"stale"`
	Revalidated       int64 `json:"revalidated"`
	Coalesced         int64 `json:"coalesced"`
	Bypass            int64 `json:"bypass"`
	Errors            int64 `json:"errors"`
	BytesFromCache    int64 `json:"bytes_from_cache"`
	BytesFromUpstream int64 `json:"bytes_from_upstream"`
	UpstreamCalls     int64 `json:"upstream_calls"`
	UpstreamNanos     int64 `json:"upstream_ns"`
	CacheAnswers      int64 `json:"cache_answers"`
	CacheNanos        int64 `json:"cache_ns"`
	SavedNanos        int64 `json:"saved_ns"`
	// HitRatio is (hits + stale) / (hits + stale + misses + revalidated);
	// bypassed requests do not count.
	HitRatio float64 `json:"hit_ratio"`
	// AvgUpstreamMs and AvgCacheMs are mean answer times.
	AvgUpstreamMs float64 `json:"avg_upstream_ms"`
	AvgCacheMs    float64 `json:"avg_cache_ms"`
	// TimeSavedMs is the upstream time the hits spared: for each hit, how
	// long the upstream took to answer the entry's fetch (SavedNanos in
	// milliseconds).
	TimeSavedMs float64 `json:"time_saved_ms"`
}

// Values returns a snapshot of c.
func (c *Counters) Values() CounterValues {
	var by [len(Outcomes)]int64
	for m := range c.byMethod {
		for o := range by {
			by[o] += c.byMethod[m][o].Load()
		}
	}
	v := CounterValues{
		Requests: c.Requests.Load(), Hits: by[outcomeHit], Misses: by[outcomeMiss] + by[outcomeCoalesced],
		Stale: by[outcomeStale], Revalidated: by[outcomeRevalidated], Coalesced: by[outcomeCoalesced],
		Bypass: by[outcomeBypass], Errors: by[outcomeError], BytesFromCache: c.BytesFromCache.Load(),
		BytesFromUpstream: c.BytesFromUpstream.Load(), UpstreamCalls: c.UpstreamCalls.Load(),
		UpstreamNanos: c.UpstreamNanos.Load(), CacheAnswers: c.CacheAnswers.Load(), CacheNanos: c.CacheNanos.Load(),
		SavedNanos: c.SavedNanos.Load(),
	}
	v.derive()
	return v
}

func (v *CounterValues) derive() {
	v.HitRatio = hitRatio(v.Hits, v.Stale, v.Misses, v.Revalidated)
	if v.UpstreamCalls > 0 {
		v.AvgUpstreamMs = float64(v.UpstreamNanos) / float64(v.UpstreamCalls) / 1e6
	}
	if v.CacheAnswers > 0 {
		v.AvgCacheMs = float64(v.CacheNanos) / float64(v.CacheAnswers) / 1e6
	}
	v.TimeSavedMs = float64(v.SavedNanos) / 1e6
}

// hitRatio is the share of cacheable answers that came from the cache.
func hitRatio(hits, stale, misses, revalidated int64) float64 {
	served := hits + stale
	if total := served + misses + revalidated; total > 0 {
		return float64(served) / float64(total)
	}
	return 0
}

func (v *CounterValues) add(o CounterValues) {
	v.Requests += o.Requests
	v.Hits += o.Hits
	v.Misses += o.Misses
	v.Stale += o.Stale
	v.Revalidated += o.Revalidated
	v.Coalesced += o.Coalesced
	v.Bypass += o.Bypass
	v.Errors += o.Errors
	v.BytesFromCache += o.BytesFromCache
	v.BytesFromUpstream += o.BytesFromUpstream
	v.UpstreamCalls += o.UpstreamCalls
	v.UpstreamNanos += o.UpstreamNanos
	v.CacheAnswers += o.CacheAnswers
	v.CacheNanos += o.CacheNanos
	v.SavedNanos += o.SavedNanos
}

// countHit counts a hit of an entry whose upstream fetch took fetched,
// answered in took, whose expiry was set for reason.
func (c *Counters) countHit(fetched, took time.Duration, reason string) {
	if fetched > 0 {
		c.SavedNanos.Add(int64(fetched))
	}
	c.hitLatency.observe(took)
	c.rules.hitReason(reason)
}

// Snapshot is the state of every upstream's counters at one time.
type Snapshot struct {
	Time      time.Time                `json:"time"`
	Upstreams map[string]CounterValues `json:"upstreams"`
	Total     CounterValues            `json:"total"`
}

// Stats holds the counters of every upstream and the history of
// one-second samples for charts.
type Stats struct {
	// counters is replaced whole, never changed, so readers load it
	// without a lock; addUpstream, under history.mu, is its only writer.
	counters atomic.Pointer[map[string]*Counters]
	now      func() time.Time

	history history
}

func newStats(now func() time.Time, upstreams ...string) *Stats {
	counters := make(map[string]*Counters, len(upstreams))
	var names []string
	for _, u := range upstreams {
		if _, dup := counters[u]; dup {
			continue
		}
		counters[u] = &Counters{}
		names = append(names, u)
	}
	s := &Stats{now: now}
	s.counters.Store(&counters)
	s.history.init(names)
	return s
}

// Upstream returns the counters of one upstream, nil if unknown.
func (s *Stats) Upstream(name string) *Counters { return (*s.counters.Load())[name] }

// addUpstream returns the counters of name, adding them (and a place in
// the history, zero in the samples already taken) when the name is new:
// an upstream a reload adds. Counters are never removed: those of an
// upstream a reload drops stay, still, until the process ends.
func (s *Stats) addUpstream(name string) *Counters {
	h := &s.history
	h.mu.Lock()
	defer h.mu.Unlock()
	old := *s.counters.Load()
	if c, ok := old[name]; ok {
		return c
	}
	counters := make(map[string]*Counters, len(old)+1)
	for n, c := range old {
		counters[n] = c
	}
	c := &Counters{}
	counters[name] = c
	h.grow(name)
	s.counters.Store(&counters)
	return c
}

// Snapshot returns the current values.
func (s *Stats) Snapshot() Snapshot {
	counters := *s.counters.Load()
	snap := Snapshot{Time: s.now(), Upstreams: make(map[string]CounterValues, len(counters))}
	for name, c := range counters {
		v := c.Values()
		snap.Upstreams[name] = v
		snap.Total.add(v)
	}
	snap.Total.derive()
	return snap
}

// RuleStats is how one rule (the urls_expire_after pattern or header that
// set the expiry) has paid off since the gateway started.
type RuleStats struct {
	Rule   string `json:"rule"`
	Stored int64  `json:"stored"`
	Hits   int64  `json:"hits"`
}

// Rules returns the per-rule counts of one upstream, most hits first.
func (s *Stats) Rules(upstream string) []RuleStats {
	c := s.Upstream(upstream)
	if c == nil {
		return nil
	}
	return c.rules.list()
}

// maxRules bounds the rules counted per upstream: rules come from the
// configuration and a handful of headers, so the bound is never reached
// unless something is wrong; the rest count under otherRule.
const maxRules = 64

const otherRule = "other"

// ruleCounts counts stores and hits per rule.
type ruleCounts struct {
	m sync.Map // rule -> *ruleCount; read without a lock on every hit
	n atomic.Int32
	// byReason maps an entry's stored reason to its rule's count, so that
	// a hit looks the rule up rather than parsing the reason (RuleOf)
	// every time; at most maxReasons are kept, the rest are parsed.
	byReason sync.Map // reason -> *ruleCount
	reasons  atomic.Int32
}

// maxReasons bounds ruleCounts.byReason: reasons carry values
// (max-age=60), so there may be many more of them than rules.
const maxReasons = 1024

// hitReason counts a hit of an entry whose expiry reason is reason.
func (rc *ruleCounts) hitReason(reason string) {
	if v, ok := rc.byReason.Load(reason); ok {
		v.(*ruleCount).hits.Add(1)
		return
	}
	c := rc.get(RuleOf(reason))
	if rc.reasons.Load() < maxReasons {
		rc.reasons.Add(1)
		rc.byReason.Store(reason, c)
	}
	c.hits.Add(1)
}

type ruleCount struct{ stored, hits atomic.Int64 }

func (rc *ruleCounts) get(rule string) *ruleCount {
	if rule == "" {
		rule = otherRule
	}
	if v, ok := rc.m.Load(rule); ok {
		return v.(*ruleCount)
	}
	if rc.n.Load() >= maxRules {
		rule = otherRule
	} else {
		rc.n.Add(1)
	}
	v, _ := rc.m.LoadOrStore(rule, &ruleCount{})
	return v.(*ruleCount)
}

func (rc *ruleCounts) stored(rule string) { rc.get(rule).stored.Add(1) }

func (rc *ruleCounts) list() []RuleStats {
	var out []RuleStats
	rc.m.Range(func(k, v any) bool {
		c := v.(*ruleCount)
		out = append(out, RuleStats{Rule: k.(string), Stored: c.stored.Load(), Hits: c.hits.Load()})
		return true
	})
	sortRules(out)
	return out
}

func sortRules(rs []RuleStats) {
	// Insertion sort: a few dozen rules at most.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && ruleLess(rs[j], rs[j-1]); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

func ruleLess(a, b RuleStats) bool {
	if a.Hits != b.Hits {
		return a.Hits > b.Hits
	}
	if a.Stored != b.Stored {
		return a.Stored > b.Stored
	}
	return a.Rule < b.Rule
}

// RuleOf names the rule an entry's Reason credits with its expiry, without
// the values that vary from entry to entry: "urls_expire_after pattern
// \"/api/*\"", "Cache-Control: max-age", "Expires", "expire_after". It is
// what the per-rule counts are keyed by.
func RuleOf(reason string) string {
	r := reason
	for _, sep := range []string{" gives ", " says ", " (", "; "} {
		if i := strings.Index(r, sep); i >= 0 {
			r = r[:i]
		}
	}
	r = strings.TrimPrefix(r, "the upstream's ")
	r = strings.TrimPrefix(r, "the request's ")
	if i := strings.IndexByte(r, '='); i >= 0 && !strings.Contains(r, "pattern") {
		r = r[:i]
	}
	r = strings.TrimSpace(r)
	if r == "" {
		return otherRule
	}
	return r
}

// fetchLatency is what fetching e from the upstream took: from sending
// the request to its response headers (RequestTime to Created, which
// every backend keeps). A revalidated entry's is its revalidation's.
// Entries without both times count 0.
func fetchLatency(e *cache.Entry) time.Duration {
	if e.RequestTime.IsZero() || e.Created.IsZero() {
		return 0
	}
	return max(e.Created.Sub(e.RequestTime), 0)
}
