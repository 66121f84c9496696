package e2e_test

import (
	"encoding/json"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/views"
	"github.com/cachegate/cachegate/web"
	"github.com/chromedp/chromedp"
)

// tileValue is the JS expression of a tile's value text.
func tileValue(id string) string {
	return `(document.querySelector('[data-testid="` + id + `"] [data-testid="tile-value"]') || {}).textContent`
}

// waitPage polls the page until expr is true: the page changed by itself.
func waitPage(t *testing.T, b *browser, what, expr string) {
	t.Helper()
	if err := chromedp.Run(b.ctx, chromedp.Poll(expr, nil)); err != nil {
		var state string
		_ = chromedp.Run(b.ctx, chromedp.Evaluate(`JSON.stringify({status: (document.querySelector('[data-testid="live-status"]')||{}).textContent, requests: `+tileValue("total-requests")+`, rows: document.querySelectorAll('[data-testid="tail-row"]').length})`, &state))
		t.Fatalf("waiting for %s (%s): %v; page state %s", what, expr, err, state)
	}
}

// TestBrowserOverviewLive opens the overview, sends requests through
// /fetch/ and watches the figures, charts and live tail change without a
// reload; pauses and filters the tail; stops the server and sees the page
// say so; restarts it and sees the page recover.
func TestBrowserOverviewLive(t *testing.T) {
	bin := startHTTPBin(t)
	cfg := web.Config{Backend: sqliteDSN(t), Backends: map[string]string{"scratch": "memory://?max_size=16MiB"},
		Upstreams: []web.UpstreamConfig{upstream("bin", bin)}}
	srv := startServer(t, cfg)
	base := srv.URL()
	// A URL with a secret in the clear, for the privacy audit.
	wantCache(t, get(t, base+"/fetch/bin/get?token=abc123"), "MISS")

	b := newBrowser(t)
	open := `document.querySelector('[data-testid="live-status"]').dataset.state === "open"`
	run(t, b, emulate(desktop), chromedp.Navigate(base+"/"), chromedp.WaitVisible(byTestID("overview"), chromedp.ByQuery))
	waitPage(t, b, "the socket", open)
	if got := testText(t, b, "privacy-link"); got != "1" {
		t.Errorf("privacy audit counts %q entries with a token in the clear, want 1", got)
	}
	var href string
	run(t, b, chromedp.AttributeValue(byTestID("privacy-link"), "href", &href, nil, chromedp.ByQuery))
	if !strings.Contains(href, "/entries?") || !strings.Contains(href, "url=%2Atoken%3D%2A") {
		t.Errorf("privacy link %q does not filter the entries by the parameter", href)
	}
	// The link's filter is the listing's: the JSON API selects exactly
	// the flagged entry with it.
	_, query, _ := strings.Cut(href, "?")
	listed := get(t, base+"/api/entries?"+query)
	var page struct {
		Entries []struct {
			URL string `json:"url"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(listed.body), &page); err != nil || len(page.Entries) != 1 || !strings.Contains(page.Entries[0].URL, "token=abc123") {
		t.Errorf("GET /api/entries?%s: %d %s", query, listed.status, listed.body)
	}

	// Traffic: the tiles count it without a reload.
	wantCache(t, get(t, base+"/fetch/bin/get?n=1"), "MISS")
	for range 3 {
		wantCache(t, get(t, base+"/fetch/bin/get?n=1"), "HIT")
	}
	waitPage(t, b, "5 requests on the tile", tileValue("total-requests")+` === "5"`)
	waitPage(t, b, "3 hits", tileValue("total-hits")+` === "3"`)
	// The rules table follows too: htmx asks for the panels again.
	waitPage(t, b, "the rule's 3 hits", `Array.from(document.querySelectorAll('[data-testid="rule-hits"]')).some(td => td.textContent === "3")`)
	if got := testText(t, b, "upstream-requests"); got != "5" {
		t.Errorf("upstream row says %q requests, want 5", got)
	}
	// The hits area of the chart has points now.
	waitPage(t, b, "the hits area", `(document.querySelector('[data-series="s-hit"]').getAttribute('d') || '').includes('L')`)
	// The tail shows them, newest first.
	waitPage(t, b, "4 tail rows", `document.querySelectorAll('[data-testid="tail-row"]').length === 4`)
	if got := testText(t, b, "tail-rows"); !strings.Contains(got, "/get?n=1") {
		t.Errorf("tail rows %q", got)
	}

	// Filter by outcome: only hits stay visible.
	run(t, b, chromedp.SetValue(byTestID("tail-outcome"), "HIT", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid="tail-outcome"]').dispatchEvent(new Event('change'))`, nil))
	var visible []string
	run(t, b, chromedp.Evaluate(`Array.from(document.querySelectorAll('[data-testid="tail-row"]')).filter(r => !r.hidden).map(r => r.dataset.cache)`, &visible))
	if len(visible) != 3 {
		t.Errorf("filtered on HIT, the tail shows %v", visible)
	}
	for _, c := range visible {
		if c != "HIT" {
			t.Errorf("filtered on HIT, the tail shows a %s", c)
		}
	}
	// Pause: new requests are counted, not shown.
	var rows int
	run(t, b, chromedp.Click(byTestID("tail-pause"), chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll('[data-testid="tail-row"]').length`, &rows))
	wantCache(t, get(t, base+"/fetch/bin/get?n=1"), "HIT")
	waitPage(t, b, "the paused tail to count the request", `document.querySelector('[data-testid="tail-state"]').textContent.includes("1 request not shown")`)
	waitPage(t, b, "6 requests", tileValue("total-requests")+` === "6"`)
	var after int
	run(t, b, chromedp.Evaluate(`document.querySelectorAll('[data-testid="tail-row"]').length`, &after))
	if after != rows {
		t.Errorf("the paused tail grew from %d to %d rows", rows, after)
	}
	run(t, b, chromedp.Click(byTestID("tail-pause"), chromedp.ByQuery),
		chromedp.SetValue(byTestID("tail-outcome"), "", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('[data-testid="tail-outcome"]').dispatchEvent(new Event('change'))`, nil))
	browserErrors(t, b, "the live overview")

	for _, v := range viewports {
		// From the top, so the sticky header is where it belongs.
		run(t, b, emulate(v), chromedp.Evaluate(`window.scrollTo(0, 0)`, nil))
		noHorizontalScroll(t, b, "/ at "+v.name)
		screenshot(t, b, "overview-live-"+v.name)
		run(t, b, darkMode(true))
		screenshot(t, b, "overview-live-"+v.name+"-dark")
		run(t, b, darkMode(false))
	}
	run(t, b, emulate(desktop))

	// A rule's link opens the entries it set the expiry of; the list says
	// what it is narrowed to and keeps it through the filter form.
	run(t, b, chromedp.Click(byTestID("rule-link"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("linked-filters"), chromedp.ByQuery))
	if got := testText(t, b, "linked-filters"); !strings.Contains(got, "expiry set by expire_after") {
		t.Errorf("linked filters %q", got)
	}
	screenshot(t, b, "entries-linked-filter")
	var listURL string
	run(t, b, chromedp.SetValue(byTestID("filter-url"), "n=1", chromedp.ByQuery),
		chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
		chromedp.Poll(`location.search.includes("n%3D1")`, nil),
		chromedp.Location(&listURL))
	if !strings.Contains(listURL, "reason=expire_after") {
		t.Errorf("filtering by URL dropped the rule's reason: %s", listURL)
	}
	if n := testCount(t, b, byTestID("entry-row")); n != 1 {
		t.Errorf("%d rows for the rule's entries under n=1, want 1", n)
	}
	run(t, b, chromedp.Navigate(base+"/"), chromedp.WaitVisible(byTestID("overview"), chromedp.ByQuery))
	waitPage(t, b, "the socket again", open)

	// The server goes away: the page says so at once and greys the
	// figures, keeping the last ones.
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	stopServer(t, srv)
	waitPage(t, b, "the disconnected banner", `!document.getElementById('live-banner').hidden && document.querySelector('[data-testid="overview"]').classList.contains('disconnected')`)
	if got := testText(t, b, "live-status"); !strings.Contains(got, "offline") {
		t.Errorf("live status %q while the server is down", got)
	}
	var kept string
	run(t, b, chromedp.Evaluate(tileValue("total-requests"), &kept))
	if kept != "6" {
		t.Errorf("the disconnected page shows %q requests, want the last figure 6", kept)
	}
	run(t, b, chromedp.Evaluate(`window.scrollTo(0, 0)`, nil))
	screenshot(t, b, "overview-live-disconnected")
	// The failed reconnects are logged by the browser: expected here.
	b.mu.Lock()
	b.errors = nil
	b.mu.Unlock()

	// Back on the same address: the page reconnects by itself and takes
	// the new server's history and counters.
	cfg.Listen = "127.0.0.1:" + port
	srv = startServer(t, cfg)
	waitPage(t, b, "the reconnect", open+` && document.getElementById('live-banner').hidden`)
	wantCache(t, get(t, srv.URL()+"/fetch/bin/get?n=1"), "HIT")
	waitPage(t, b, "the restarted server's count", tileValue("total-requests")+` === "1"`)
	waitPage(t, b, "the figures ungreyed", `!document.querySelector('[data-testid="overview"]').classList.contains('disconnected')`)
	screenshot(t, b, "overview-live-reconnected")
	browserErrors(t, b, "the reconnected overview")
}

// TestBrowserOverviewCharts draws the overview from fifteen minutes of
// made-up traffic (a rising load with a burst of misses and errors), the
// state the live server reaches only after a quarter of an hour, to look
// at the charts full.
func TestBrowserOverviewCharts(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 0, 0, 0, time.UTC)
	v := views.OverviewView{Now: now, RequestsPerSec: 120,
		Total:    views.Counters{Requests: 90000, Hits: 70000, Misses: 15000, Stale: 2000, Revalidated: 1500, Coalesced: 300, Bypass: 1000, Errors: 500, BytesFromCache: 3 << 30, TimeSaved: 95 * time.Minute, HitRatio: 0.82},
		Minute:   views.Counters{Requests: 7000, HitRatio: 0.85},
		Backends: []views.BackendSummary{{Name: "default", Kind: "sqlite", Entries: 120000, Bytes: 900 << 20}},
		Dist: views.Distribution{Backend: "default", CountedAt: now,
			Size:   []views.Bucket{{Label: "< 1 KiB", Count: 40000, Link: "/entries"}, {Label: "1–10 KiB", Count: 60000, Link: "/entries"}, {Label: "10–100 KiB", Count: 15000, Link: "/entries"}, {Label: "100 KiB–1 MiB", Count: 4000, Link: "/entries"}, {Label: "1–10 MiB", Count: 900, Link: "/entries"}, {Label: "≥ 10 MiB", Count: 100, Link: "/entries"}},
			Expiry: []views.Bucket{{Label: "expired", Count: 8000, Link: "/entries"}, {Label: "< 1 min", Count: 2000, Link: "/entries"}, {Label: "1–10 min", Count: 9000, Link: "/entries"}, {Label: "10 min–1 h", Count: 50000, Link: "/entries"}, {Label: "1 h–1 d", Count: 45000, Link: "/entries"}, {Label: "≥ 1 d or never", Count: 6000, Link: "/entries"}}},
	}
	var spark []float64
	for i := range 900 {
		s := float64(i)
		hits := int64(60 + s/10 + 20*math.Sin(s/40))
		p := views.ChartPoint{Time: now.Add(time.Duration(i-899) * time.Second), Hits: hits, Stale: 2, Revalidated: 1, Misses: 12, Bypass: 1,
			HitP50Ms: 0.08 + 0.02*math.Sin(s/30), HitP99Ms: 0.6, MissP50Ms: 40, MissP99Ms: 180}
		if i > 500 && i < 540 {
			p.Misses, p.Errors, p.MissP99Ms = 60, 10, 2500
		}
		p.HasRatio = true
		p.HitRatio = float64(p.Hits+p.Stale) / float64(p.Hits+p.Stale+p.Misses+p.Revalidated)
		v.History = append(v.History, p)
		spark = append(spark, float64(hits+16))
	}
	v.Upstreams = []views.UpstreamStats{{Name: "github", URL: "https://api.github.com", Backend: "default", Mode: "requests-cache", Counters: v.Total, Spark: spark}}
	v.Rules = []views.OverviewRule{{Upstream: "github", Rule: `urls_expire_after pattern "/repos/*"`, Stored: 9000, Hits: 61000}, {Upstream: "github", Rule: "expire_after", Stored: 3000, Hits: 9000}}
	l := views.Layout{Title: "Overview", Active: "/", Path: "/", Backend: "default", DefaultBackend: "default",
		Backends: []views.BackendChoice{{Name: "default", Kind: "sqlite", Entries: 120000, Bytes: 900 << 20}}}
	base := serveComponent(t, views.Overview(l, v))
	b := newBrowser(t)
	for _, vp := range viewports {
		run(t, b, emulate(vp), chromedp.Navigate(base+"/"), chromedp.WaitVisible(byTestID("chart-requests"), chromedp.ByQuery))
		var d string
		run(t, b, chromedp.AttributeValue(`[data-series="s-hit"]`, "d", &d, nil, chromedp.ByQuery))
		if strings.Count(d, "L") < 899 {
			t.Errorf("the hits area has %d points, want 900", strings.Count(d, "L"))
		}
		noHorizontalScroll(t, b, "charts at "+vp.name)
		// This server has no /ws, so the page says it is disconnected and
		// greys everything: undo that to see the charts' colours.
		run(t, b, chromedp.Evaluate(`document.getElementById('live-banner').hidden = true; document.querySelector('[data-testid="overview"]').classList.remove('disconnected')`, nil))
		screenshot(t, b, "overview-charts-"+vp.name)
		run(t, b, darkMode(true))
		screenshot(t, b, "overview-charts-"+vp.name+"-dark")
		run(t, b, darkMode(false))
	}
}
