package views

import "time"

// PanelRefresh is how often an open overview asks for its OverviewPanels
// again: the rules' counters change with every store and hit, the
// backend's figures behind the other panels at most every 30 s.
const PanelRefresh = 5 * time.Second

// OverviewView is the overview page: what the gateway is doing now, what
// the cache saved, and how full each backend is.
type OverviewView struct {
	Total     Counters
	Upstreams []UpstreamStats
	Backends  []BackendSummary
	// Now is when the page was drawn.
	Now time.Time
	// RequestsPerSec is the latest second's; Minute the last minute.
	RequestsPerSec float64
	Minute         Counters
	// History is one point a second, oldest first, for the charts.
	History []ChartPoint
	// Dist is the chosen backend's entries by size and by time to expiry.
	Dist Distribution
	// Rules are the rules that set expiries, with what they stored and
	// how often it was hit, per upstream.
	Rules []OverviewRule
	// Hottest and Largest are the chosen backend's top entries.
	Hottest, Largest []TopEntry
	TopErr           string
	// Privacy is the audit of the chosen backend.
	Privacy PrivacyAudit
}

// Counters are the gateway's request counters for one upstream or all.
type Counters struct {
	Requests, Hits, Misses, Stale, Revalidated, Coalesced, Bypass, Errors int64
	BytesFromCache                                                        int64
	// TimeSaved is the upstream time the hits spared.
	TimeSaved time.Duration
	// HitRatio is in [0, 1].
	HitRatio float64
}

// UpstreamStats is one upstream's row on the overview.
type UpstreamStats struct {
	Name, URL, Backend, Mode string
	Counters
	// Spark is requests per second over the charted window, oldest first.
	Spark []float64
}

// BackendSummary is one backend's row on the overview.
type BackendSummary struct {
	Name, Kind string
	Entries    int64
	Bytes      int64
	MaxBytes   int64 // 0: no cap
	Err        string
}

// ChartPoint is one second of the charts.
type ChartPoint struct {
	Time                                             time.Time
	Hits, Stale, Revalidated, Misses, Bypass, Errors int64
	HitRatio                                         float64
	HitP50Ms, HitP99Ms, MissP50Ms, MissP99Ms         float64
	HasRatio                                         bool // something cacheable was answered
}

// Distribution is a histogram of one backend's entries.
type Distribution struct {
	Backend string
	// Size and Expiry are the buckets in order.
	Size, Expiry []Bucket
	// CountedAt is when the counts were taken (they are reused for a few
	// seconds); Err says why they could not be.
	CountedAt time.Time
	Err       string
}

// Bucket is one bar of a histogram, linking to the entries in it.
type Bucket struct {
	Label string
	Count int64
	Link  string
}

// OverviewRule is one rule of one upstream.
type OverviewRule struct {
	Upstream, Rule string
	Stored, Hits   int64
	// Link lists the entries the rule stored ("" when no filter selects
	// them alone).
	Link string
}

// TopEntry is one entry of a top-10 list.
type TopEntry struct {
	Key, URL, Upstream string
	Hits, Size         int64
	Link               string
}

// PrivacyAudit counts stored entries that may hold what they should not.
type PrivacyAudit struct {
	Rows []PrivacyRow
	// Scanned is how many of the newest entries the header checks read
	// (they need every entry's headers); Total how many there are.
	Scanned, Total int64
	Err            string
}

// PrivacyRow is one finding.
type PrivacyRow struct {
	ID, Label, Hint string
	Count           int64
	// Link lists the entries, when the entries page can filter them.
	Link string
}
