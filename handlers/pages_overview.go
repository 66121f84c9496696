package handlers

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/views"
)

// chartWindow is what the overview charts: the last 15 minutes.
const chartWindow = 15 * time.Minute

// handleOverviewPage shows the gateway's counters, the last 15 minutes
// as charts, the chosen backend's distribution, top entries and privacy
// audit. overview.js then keeps it live from /ws.
func (a *API) handleOverviewPage(w http.ResponseWriter, r *http.Request) {
	_, name, b, ok := a.pageQuery(w, r)
	if !ok {
		return
	}
	l, v := a.overview(r, name, b)
	a.render(w, r, http.StatusOK, views.Overview(l, v))
}

// handleOverviewPanels answers the overview's periodic request for its
// panels (views.OverviewPanels): the same figures as the page, without
// the rest of it.
func (a *API) handleOverviewPanels(w http.ResponseWriter, r *http.Request) {
	_, name, b, ok := a.pageQuery(w, r)
	if !ok {
		return
	}
	l, v := a.overview(r, name, b)
	a.render(w, r, http.StatusOK, views.OverviewPanels(l, v))
}

// overview gathers the overview of backend b (named name) as r asks.
func (a *API) overview(r *http.Request, name string, b cache.Backend) (views.Layout, views.OverviewView) {
	st := a.gw.Stats()
	snap := st.Snapshot()
	now := a.now()
	v := views.OverviewView{Total: counters(snap.Total), Now: now}
	hist := st.History()
	if n := len(hist); n > 0 {
		v.RequestsPerSec = float64(hist[n-1].Total.Requests)
	}
	v.Minute = windowCounters(st.Window(snap.Time, time.Minute))
	v.History = chartPoints(hist, snap.Time)
	for _, u := range a.gw.Upstreams() {
		us := views.UpstreamStats{
			Name: u.Name, URL: u.URL, Backend: u.Backend, Mode: string(u.Policy.Mode),
			Counters: counters(snap.Upstreams[u.Name]),
		}
		us.Spark = spark(hist, u.Name, snap.Time)
		v.Upstreams = append(v.Upstreams, us)
		for _, rs := range st.Rules(u.Name) {
			row := views.OverviewRule{Upstream: u.Name, Rule: rs.Rule, Stored: rs.Stored, Hits: rs.Hits}
			if prefix := ruleReasonPrefix(u.Policy.Mode, rs.Rule); prefix != "" {
				row.Link = "/entries?" + url.Values{"upstream": {u.Name}, "reason": {prefix}}.Encode()
				if u.Backend != cache.DefaultBackendName {
					row.Link += "&backend=" + url.QueryEscape(u.Backend)
				}
			}
			v.Rules = append(v.Rules, row)
		}
	}
	figs := a.liveFigures.wait(r.Context())
	for _, bn := range a.names {
		bb := a.backends[bn]
		if a.canonical[bb] != bn {
			continue // an alias: counting it again would double the totals
		}
		f := figs[bn]
		s := views.BackendSummary{Name: bn, Kind: backendKind(a.dsns[bn]), Entries: f.Entries, Bytes: f.Bytes, Err: f.Err}
		if sz, ok := bb.(cache.Sizer); ok {
			s.MaxBytes = sz.MaxBytes()
		}
		v.Backends = append(v.Backends, s)
	}
	l := a.layout(r, "Overview", "/")
	ins := a.liveFigures.insight(r.Context(), name, b, now)
	v.Dist, v.Privacy = ins.dist, ins.privacy
	v.Hottest, v.Largest, v.TopErr = ins.hottest, ins.largest, ins.topErr
	for _, list := range [][]views.TopEntry{v.Hottest, v.Largest} {
		for i := range list {
			list[i].Link = l.Link("/entries/" + url.PathEscape(list[i].Key))
		}
	}
	for i := range v.Dist.Size {
		v.Dist.Size[i].Link = l.LinkWith("/entries", sizeQuery(i))
	}
	for i := range v.Dist.Expiry {
		v.Dist.Expiry[i].Link = l.LinkWith("/entries", expiryQuery(i, ins.at))
	}
	for i := range v.Privacy.Rows {
		if q := privacyQuery(v.Privacy.Rows[i].ID); q != nil {
			v.Privacy.Rows[i].Link = l.LinkWith("/entries", q)
		}
	}
	return l, v
}

// counters copies the gateway's counters into the view-model.
func counters(c gateway.CounterValues) views.Counters {
	return views.Counters{
		Requests: c.Requests, Hits: c.Hits, Misses: c.Misses, Stale: c.Stale,
		Revalidated: c.Revalidated, Coalesced: c.Coalesced, Bypass: c.Bypass, Errors: c.Errors,
		BytesFromCache: c.BytesFromCache, TimeSaved: time.Duration(c.SavedNanos), HitRatio: c.HitRatio,
	}
}

func windowCounters(w gateway.Window) views.Counters {
	return views.Counters{
		Requests: w.Requests, Hits: w.Hits, Misses: w.Misses, Stale: w.Stale, Revalidated: w.Revalidated,
		Coalesced: w.Coalesced, Bypass: w.Bypass, Errors: w.Errors, BytesFromCache: w.BytesFromCache,
		TimeSaved: time.Duration(w.SavedMs * 1e6), HitRatio: w.HitRatio,
	}
}

// chartPoints keeps the samples of the charted window before now.
func chartPoints(hist []gateway.Sample, now time.Time) []views.ChartPoint {
	from := now.Add(-chartWindow)
	out := make([]views.ChartPoint, 0, len(hist))
	for _, s := range hist {
		if !s.Time.After(from) {
			continue
		}
		p := s.Total
		out = append(out, views.ChartPoint{
			Time: s.Time, Hits: p.Hits, Stale: p.Stale, Revalidated: p.Revalidated, Misses: p.Misses,
			Bypass: p.Bypass, Errors: p.Errors, HitRatio: p.HitRatio(),
			HasRatio: p.Hits+p.Stale+p.Misses+p.Revalidated > 0,
			HitP50Ms: p.HitP50Ms, HitP99Ms: p.HitP99Ms, MissP50Ms: p.MissP50Ms, MissP99Ms: p.MissP99Ms,
		})
	}
	return out
}

// spark is one upstream's requests per second over the charted window.
func spark(hist []gateway.Sample, upstream string, now time.Time) []float64 {
	from := now.Add(-chartWindow)
	out := make([]float64, 0, len(hist))
	for _, s := range hist {
		if s.Time.After(from) {
			out = append(out, float64(s.Upstreams[upstream].Requests))
		}
	}
	return out
}

// sizeBounds are the size histogram's buckets: [lo, hi) in bytes, hi 0
// for no bound.
var sizeBounds = []struct {
	label  string
	lo, hi int64
}{
	{"< 1 KiB", 0, 1 << 10},
	{"1–10 KiB", 1 << 10, 10 << 10},
	{"10–100 KiB", 10 << 10, 100 << 10},
	{"100 KiB–1 MiB", 100 << 10, 1 << 20},
	{"1–10 MiB", 1 << 20, 10 << 20},
	{"≥ 10 MiB", 10 << 20, 0},
}

// expiryBounds are the time-to-expiry buckets: [lo, hi) from now; lo < 0
// is "expired", hi 0 for no bound (never-expiring entries included).
var expiryBounds = []struct {
	label  string
	lo, hi time.Duration
}{
	{"expired", -1, 0},
	{"< 1 min", 0, time.Minute},
	{"1–10 min", time.Minute, 10 * time.Minute},
	{"10 min–1 h", 10 * time.Minute, time.Hour},
	{"1 h–1 d", time.Hour, 24 * time.Hour},
	{"≥ 1 d or never", 24 * time.Hour, 0},
}

func sizeFilter(i int) cache.Filter {
	b := sizeBounds[i]
	f := cache.Filter{MinSize: b.lo}
	if b.hi > 0 {
		f.MaxSize = b.hi - 1 // MaxSize is inclusive
	}
	return f
}

func expiryFilter(i int, now time.Time) cache.Filter {
	b := expiryBounds[i]
	if b.lo < 0 {
		return cache.Filter{ExpiresBefore: now}
	}
	f := cache.Filter{ExpiresAfter: now.Add(b.lo)}
	if b.hi > 0 {
		f.ExpiresBefore = now.Add(b.hi)
	}
	return f
}

// sizeQuery and expiryQuery are the entries page's filters of a bucket
// (the ?min_size= / ?expires_after= parameters the JSON listing takes).
func sizeQuery(i int) url.Values {
	b := sizeBounds[i]
	q := url.Values{"sort": {"size"}, "order": {"desc"}}
	if b.lo > 0 {
		q.Set("min_size", strconv.FormatInt(b.lo, 10))
	}
	if b.hi > 0 {
		q.Set("max_size", strconv.FormatInt(b.hi-1, 10))
	}
	return q
}

func expiryQuery(i int, now time.Time) url.Values {
	f := expiryFilter(i, now)
	q := url.Values{"sort": {"expires"}, "order": {"asc"}}
	if !f.ExpiresAfter.IsZero() {
		q.Set("expires_after", f.ExpiresAfter.UTC().Format(time.RFC3339))
	}
	if !f.ExpiresBefore.IsZero() {
		q.Set("expires_before", f.ExpiresBefore.UTC().Format(time.RFC3339))
	}
	return q
}

// ruleReasonPrefix is the start of the stored reasons of the entries a
// rule of the overview (gateway.RuleOf) set the expiry of, for a link to
// them (Filter.Reason); "" for one no prefix selects alone.
func ruleReasonPrefix(mode cache.Mode, rule string) string {
	switch {
	case rule == "" || rule == "other":
		return ""
	case strings.HasPrefix(rule, cache.ExpireAfterHeader):
		return "the request's " + rule
	case mode != cache.ModeRFC9111 && (strings.Contains(rule, "Cache-Control") || strings.HasPrefix(rule, "Expires")):
		return "the upstream's " + rule
	}
	return rule
}
