package handlers

import (
	"cmp"
	"context"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// backendFigure is one backend's size as /ws and the overview show it.
type backendFigure struct {
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
	Err     string `json:"error,omitempty"`
}

// figureRefresh is how long counts are reused: fifty open overviews cost
// the backends one count every few seconds, not fifty a second.
const (
	figureRefresh  = 3 * time.Second
	insightRefresh = 30 * time.Second
)

// figureCache counts the backends for the overview and /ws, shared by
// every client and reused for figureRefresh; the heavier insight of one
// backend (histograms, top entries, privacy audit) for insightRefresh.
type figureCache struct {
	a *API

	mu       sync.Mutex // protects the fields below
	at       time.Time
	figs     map[string]backendFigure
	counting bool
	insights map[string]*insight // by backend name
}

func newFigureCache(a *API) *figureCache {
	return &figureCache{a: a, insights: map[string]*insight{}}
}

// get returns the latest counts without waiting (nil before the first);
// when they are old it starts one recount in the background.
func (f *figureCache) get() map[string]backendFigure {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.counting && f.a.now().Sub(f.at) >= figureRefresh {
		f.counting = true
		go f.count()
	}
	return f.figs
}

// wait returns counts no older than figureRefresh, counting now if need
// be (a page load).
func (f *figureCache) wait(ctx context.Context) map[string]backendFigure {
	f.mu.Lock()
	fresh := f.figs != nil && f.a.now().Sub(f.at) < figureRefresh
	figs := f.figs
	f.mu.Unlock()
	if fresh {
		return figs
	}
	return f.countWith(ctx)
}

func (f *figureCache) count() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*healthTimeout)
	defer cancel()
	f.countWith(ctx)
	f.mu.Lock()
	f.counting = false
	f.mu.Unlock()
}

func (f *figureCache) countWith(ctx context.Context) map[string]backendFigure {
	totals := f.a.countBackends(ctx)
	figs := make(map[string]backendFigure, len(f.a.names))
	for _, name := range f.a.names {
		t := totals[f.a.backends[name]]
		fig := backendFigure{Entries: t.Entries, Bytes: t.Bytes}
		if t.err != nil {
			fig.Err = healthMessage(t.err)
		}
		figs[name] = fig
	}
	f.mu.Lock()
	f.figs, f.at = figs, f.a.now()
	f.mu.Unlock()
	return figs
}

// insight is what the overview shows of one backend beyond its size.
type insight struct {
	at               time.Time
	dist             views.Distribution
	hottest, largest []views.TopEntry
	topErr           string
	privacy          views.PrivacyAudit
}

// insight returns b's insight, computed at most every insightRefresh.
// Each part is a few bounded queries: bucket counts, two ten-entry
// pages, and the audit's counts.
func (f *figureCache) insight(ctx context.Context, name string, b cache.Backend, now time.Time) *insight {
	f.mu.Lock()
	in := f.insights[name]
	f.mu.Unlock()
	if in != nil && now.Sub(in.at) < insightRefresh {
		return in
	}
	in = &insight{at: now}
	ctx, cancel := context.WithTimeout(ctx, 2*healthTimeout)
	defer cancel()
	in.dist = distribution(ctx, name, b, now)
	in.hottest, in.largest, in.topErr = topEntries(ctx, b)
	in.privacy = f.a.privacyAudit(ctx, b)
	f.mu.Lock()
	f.insights[name] = in
	f.mu.Unlock()
	return in
}

func distribution(ctx context.Context, name string, b cache.Backend, now time.Time) views.Distribution {
	d := views.Distribution{Backend: name, CountedAt: now}
	for i, sb := range sizeBounds {
		t, err := b.Count(ctx, sizeFilter(i))
		if err != nil {
			d.Err = healthMessage(err)
			return d
		}
		d.Size = append(d.Size, views.Bucket{Label: sb.label, Count: t.Entries})
	}
	for i, eb := range expiryBounds {
		t, err := b.Count(ctx, expiryFilter(i, now))
		if err != nil {
			d.Err = healthMessage(err)
			return d
		}
		d.Expiry = append(d.Expiry, views.Bucket{Label: eb.label, Count: t.Entries})
	}
	return d
}

func topEntries(ctx context.Context, b cache.Backend) (hottest, largest []views.TopEntry, errMsg string) {
	list := func(field cache.SortField) ([]views.TopEntry, error) {
		p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: field, Desc: true}, Limit: 10})
		if err != nil {
			return nil, err
		}
		out := make([]views.TopEntry, 0, len(p.Entries))
		for _, e := range p.Entries {
			if field == cache.SortHits && e.Hits == 0 {
				break // never hit is not hot
			}
			// The stored URL is redacted already (ignored parameters and
			// credentials), as the JSON listing shows it.
			out = append(out, views.TopEntry{Key: e.Key, URL: e.URL, Upstream: e.Upstream, Hits: e.Hits, Size: e.Size})
		}
		return out, nil
	}
	var err error
	if hottest, err = list(cache.SortHits); err == nil {
		largest, err = list(cache.SortSize)
	}
	if err != nil {
		return nil, nil, healthMessage(err)
	}
	return hottest, largest, ""
}

// secretParams are query parameter names that usually carry secrets; an
// entry whose URL has one with its value in the clear was stored from a
// request whose secret is now on disk (it belongs in
// ignored_parameters, which redacts it and leaves it out of the key).
var secretParams = []string{"token", "key", "sig", "signature", "password", "passwd", "secret", "auth", "session", "credential"}

// auditScan is how many of the newest entries the audit reads: a bounded
// listing (five pages, no bodies) rather than a scan of every entry,
// whatever the backend holds, so an open overview costs the backend the
// same at a thousand entries as at a million. Each finding links to the
// entries page's filter that selects all such entries.
const auditScan = 5 * cache.MaxLimit

// privacyAudit reads the newest auditScan entries for what they should not
// hold: a URL parameter that looks like a secret (secretParams) with its
// value in the clear, a request with credentials, a Set-Cookie kept, a Vary
// on a header the upstream ignores.
func (a *API) privacyAudit(ctx context.Context, b cache.Backend) views.PrivacyAudit {
	var p views.PrivacyAudit
	if err := a.audit(ctx, b, &p); err != nil {
		p.Err = healthMessage(err)
	}
	return p
}

// secretParam returns the secretParams word a query parameter name ends
// with ("api_key" is "key"), "" for none.
func secretParam(name string) string {
	name = strings.ToLower(name)
	for _, w := range secretParams {
		if strings.HasSuffix(name, w) {
			return w
		}
	}
	return ""
}

func (a *API) audit(ctx context.Context, b cache.Backend, p *views.PrivacyAudit) error {
	policies := map[string]*cache.Policy{}
	if a.gw != nil {
		for _, u := range a.gw.Upstreams() {
			policies[u.Name] = &u.Policy
		}
	}
	var creds, cookies int64
	params := map[string]int64{}
	vary := map[varyFinding]int64{}
	q := cache.Query{Sort: cache.Sort{Field: cache.SortCreated, Desc: true}, Limit: cache.MaxLimit}
	for p.Scanned < auditScan {
		page, err := b.List(ctx, q)
		if err != nil {
			return err
		}
		for _, e := range page.Entries {
			p.Scanned++
			if _, raw, ok := strings.Cut(e.URL, "?"); ok {
				seen := map[string]bool{}
				for _, kv := range strings.FieldsFunc(raw, func(r rune) bool { return r == '&' || r == ';' }) {
					k, v, _ := strings.Cut(kv, "=")
					if k, err := url.QueryUnescape(k); err == nil {
						if w := secretParam(k); w != "" && v != "" && v != gateway.Redacted && !seen[w] {
							seen[w] = true
							params[w]++
						}
					}
				}
			}
			if cache.HasCredential(e.RequestHeader) {
				creds++
			}
			if len(e.Header["Set-Cookie"]) > 0 || len(e.Header["Set-Cookie2"]) > 0 {
				cookies++
			}
			if pol := policies[e.Upstream]; pol != nil {
				for _, name := range varyIgnored(e.Header, pol) {
					vary[varyFinding{e.Upstream, name}]++
				}
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	t, err := b.Count(ctx, cache.Filter{})
	if err != nil {
		return err
	}
	p.Total = t.Entries
	of := ""
	if p.Scanned < p.Total {
		of = " (of the newest " + views.Count(p.Scanned) + ")"
	}
	for _, w := range secretParams {
		if n := params[w]; n > 0 {
			p.Rows = append(p.Rows, views.PrivacyRow{
				ID: "param-" + w, Label: "URLs with a " + w + " parameter in the clear" + of, Count: n,
				Hint: "Add the parameter to the upstream's ignored_parameters (it is then redacted and left out of the key), then delete these entries.",
			})
		}
	}
	if creds > 0 {
		p.Rows = append(p.Rows, views.PrivacyRow{ID: "credentials", Label: "Stored from requests with credentials" + of, Count: creds,
			Hint: "Shared only with the same credential, as RFC 9111 allows; check the upstream meant them to be cached (Cache-Control: public or s-maxage)."})
	}
	if cookies > 0 {
		p.Rows = append(p.Rows, views.PrivacyRow{ID: "set-cookie", Label: "Responses stored with Set-Cookie" + of, Count: cookies,
			Hint: "A cookie in a shared entry goes to every client: delete these entries."})
	}
	for _, f := range slices.SortedFunc(maps.Keys(vary), varyFinding.compare) {
		p.Rows = append(p.Rows, views.PrivacyRow{
			ID:    "vary:" + f.upstream + ":" + f.header,
			Label: "Vary on " + f.header + ", which " + f.upstream + " ignores" + of, Count: vary[f],
			Hint: "These entries are keyed by a value that is redacted: every client shares one variant. Stop ignoring the header, or accept that.",
		})
	}
	return nil
}

// varyFinding is a Vary on a header its upstream ignores.
type varyFinding struct{ upstream, header string }

func (a varyFinding) compare(b varyFinding) int {
	return cmp.Or(cmp.Compare(a.upstream, b.upstream), cmp.Compare(a.header, b.header))
}

// varyIgnored returns the headers h's Vary names that the policy ignores,
// in canonical form.
func varyIgnored(h http.Header, pol *cache.Policy) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" && name != "*" && pol.IsIgnored(name) {
				out = append(out, http.CanonicalHeaderKey(name))
			}
		}
	}
	return out
}

// privacyQuery is the entries page's filter for a finding, nil when it has
// none.
func privacyQuery(id string) url.Values {
	if name, ok := strings.CutPrefix(id, "param-"); ok {
		return url.Values{"url": {"*" + name + "=*"}}
	}
	if rest, ok := strings.CutPrefix(id, "vary:"); ok {
		// A header name holds no ':'; the last one ends the upstream's.
		if i := strings.LastIndexByte(rest, ':'); i > 0 {
			return url.Values{"upstream": {rest[:i]}, "vary": {rest[i+1:]}}
		}
	}
	switch id {
	case "credentials":
		return url.Values{"credentials": {"true"}}
	case "set-cookie":
		return url.Values{"set_cookie": {"true"}}
	}
	return nil
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
