package e2e_test

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/web"
	"github.com/chromedp/chromedp"
)

// tileValue is the JS expression of a tile's value text.
func tileValue(id string) string {
	return `(document.querySelector('[data-testid="` + id + `"] [data-testid="tile-value"]') || {}).textContent`
}

// waitJS polls the page until expr is true: the page changed by itself.
func waitJS(t *testing.T, b *browser, what, expr string) {
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
	waitJS(t, b, "the socket", open)
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
	waitJS(t, b, "5 requests on the tile", tileValue("total-requests")+` === "5"`)
	waitJS(t, b, "3 hits", tileValue("total-hits")+` === "3"`)
	if got := testText(t, b, "upstream-requests"); got != "5" {
		t.Errorf("upstream row says %q requests, want 5", got)
	}
	// The hits area of the chart has points now.
	waitJS(t, b, "the hits area", `(document.querySelector('[data-series="s-hit"]').getAttribute('d') || '').includes('L')`)
	// The tail shows them, newest first.
	waitJS(t, b, "4 tail rows", `document.querySelectorAll('[data-testid="tail-row"]').length === 4`)
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
	waitJS(t, b, "the paused tail to count the request", `document.querySelector('[data-testid="tail-state"]').textContent.includes("1 request not shown")`)
	waitJS(t, b, "6 requests", tileValue("total-requests")+` === "6"`)
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

	// The server goes away: the page says so at once and greys the
	// figures, keeping the last ones.
	_, port, err := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	stopServer(t, srv)
	waitJS(t, b, "the disconnected banner", `!document.getElementById('live-banner').hidden && document.querySelector('[data-testid="overview"]').classList.contains('disconnected')`)
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
	waitJS(t, b, "the reconnect", open+` && document.getElementById('live-banner').hidden`)
	wantCache(t, get(t, srv.URL()+"/fetch/bin/get?n=1"), "HIT")
	waitJS(t, b, "the restarted server's count", tileValue("total-requests")+` === "1"`)
	waitJS(t, b, "the figures ungreyed", `!document.querySelector('[data-testid="overview"]').classList.contains('disconnected')`)
	screenshot(t, b, "overview-live-reconnected")
	browserErrors(t, b, "the reconnected overview")
}
