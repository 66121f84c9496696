package handlers_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// The overview shows what the gateway counted, the rule that paid off,
// the chosen backend's top entries and histograms linking to the entries
// they count, and the privacy audit's finding with its filter.
func TestOverviewPageLiveParts(t *testing.T) {
	p := newPages(t, pagesConfig{})
	p.fetch(t, "/a", "MISS")
	p.fetch(t, "/a", "HIT")
	p.fetch(t, "/a", "HIT")
	p.fetch(t, "/b?token=s3cret", "MISS")
	p.gw.FlushHits(context.Background())

	doc := p.get(t, "/", http.StatusOK)
	for id, want := range map[string]string{
		"total-requests": "4", "total-hits": "2", "total-misses": "2", "total-coalesced": "0",
		"total-errors": "0", "total-hit-ratio": "50.0 %",
	} {
		if got := text(testid(testid(doc, id), "tile-value")); got != want {
			t.Errorf("tile %s = %q, want %q", id, got, want)
		}
	}
	if got := text(testid(testid(doc, "total-bytes-from-cache"), "tile-value")); got == "0 B" {
		t.Error("two hits served no bytes from cache")
	}
	// The socket is asked for the topics the page shows, jobs included:
	// a job's toast follows it on every page.
	if got, _ := testid(doc, "overview").Attr("data-live-topics"); got != "jobs,stats,requests" {
		t.Errorf("data-live-topics %q", got)
	}
	if testid(doc, "live-status").Length() != 1 || testid(doc, "live-banner").AttrOr("hidden", "x") == "x" {
		t.Error("no live status, or the disconnected banner shows before any disconnect")
	}

	rule := testid(doc, "rule-row")
	if rule.Length() != 1 || text(testid(rule, "rule-name")) != "expire_after" ||
		text(testid(rule, "rule-stored")) != "2" || text(testid(rule, "rule-hits")) != "2" {
		t.Errorf("rules table: %q", text(testid(doc, "rule-stats")))
	}
	// The rule's name links to the entries it stored, and that list holds
	// exactly them.
	link, _ := testid(rule, "rule-link").Attr("href")
	if !strings.HasPrefix(link, "/entries?") || !strings.Contains(link, "reason=expire_after") {
		t.Fatalf("rule link %q, want the entries listed by its reason", link)
	}
	if n := testid(p.get(t, link, http.StatusOK), "entry-row").Length(); n != 2 {
		t.Errorf("the rule's link lists %d entries, want the 2 it stored", n)
	}

	hot := testid(testid(doc, "top-hottest"), "top-entry")
	if hot.Length() != 1 || !strings.Contains(text(hot), "/a") || !strings.Contains(text(hot), "2 hits") {
		t.Fatalf("hottest: %q", text(testid(doc, "top-hottest")))
	}
	if href, _ := hot.Find("a").Attr("href"); !strings.HasPrefix(href, "/entries/") {
		t.Errorf("hottest entry links to %q, want its detail page", href)
	}
	if got := testid(testid(doc, "top-largest"), "top-entry").Length(); got != 2 {
		t.Errorf("%d largest entries, want 2", got)
	}

	var sized int
	for _, c := range testid(testid(doc, "dist-size"), "hist-count").Nodes {
		if c.FirstChild != nil && c.FirstChild.Data != "0" {
			sized++
		}
	}
	if sized != 1 {
		t.Errorf("%d size buckets hold entries, want the one of small bodies", sized)
	}
	firstBucket, _ := testid(testid(doc, "dist-size"), "hist-bucket").First().Find("a").Attr("href")
	if !strings.Contains(firstBucket, "max_size=1023") {
		t.Errorf("the smallest size bucket links to %q", firstBucket)
	}

	row := testid(doc, "privacy-row")
	if row.Length() != 1 || row.AttrOr("data-finding", "") != "param-token" {
		t.Fatalf("privacy audit: %q", text(testid(doc, "privacy")))
	}
	if href, _ := testid(row, "privacy-link").Attr("href"); href != "/entries?url=%2Atoken%3D%2A" || text(testid(row, "privacy-link")) != "1" {
		t.Errorf("privacy link %q (%q)", href, text(testid(row, "privacy-link")))
	}
	// The secret shows nowhere but in the entry's own URL, which the
	// audit flags: not in the finding's text.
	if strings.Contains(text(testid(doc, "privacy")), "s3cret") {
		t.Error("the audit shows the secret")
	}
}

// Entries without secret-looking parameters give a clear audit.
func TestOverviewPrivacyAuditClear(t *testing.T) {
	p := newPages(t, pagesConfig{})
	p.fetch(t, "/a", "MISS")
	doc := p.get(t, "/", http.StatusOK)
	if testid(doc, "privacy-row").Length() != 0 || testid(doc, "privacy-clear").Length() != 1 {
		t.Errorf("privacy audit of clean entries: %q", text(testid(doc, "privacy")))
	}
}

// Every privacy finding links to an entries list holding exactly the
// entries it counts, which a bulk delete can then remove: Set-Cookie kept,
// credentials, and a Vary on a header the upstream ignores.
func TestOverviewPrivacyFindingsLinkToTheirEntries(t *testing.T) {
	p := newPages(t, pagesConfig{ignored: []string{"X-Api-Key"}})
	entry := func(key string, set func(e *cache.Entry)) *cache.Entry {
		e := cachetest.NewEntry(key)
		e.Upstream, e.URL = "bin", "http://bin.local/"+key
		e.Created = time.Now()
		set(e)
		return e
	}
	cachetest.MustPut(t, p.backend,
		entry("cookie", func(e *cache.Entry) { e.Header["Set-Cookie"] = []string{"sid=1"} }),
		entry("cred", func(e *cache.Entry) { e.RequestHeader = http.Header{"Authorization": {"REDACTED"}} }),
		entry("vary", func(e *cache.Entry) { e.Header["Vary"] = []string{"Accept, x-api-key"} }),
		entry("vary-kept", func(e *cache.Entry) { e.Header["Vary"] = []string{"Accept"} }),
		entry("clean", func(e *cache.Entry) {}),
	)
	doc := p.get(t, "/", http.StatusOK)
	want := map[string]string{"set-cookie": "cookie", "credentials": "cred", "vary:bin:X-Api-Key": "vary"}
	rows := testid(doc, "privacy-row")
	if rows.Length() != len(want) {
		t.Fatalf("%d findings, want %d: %q", rows.Length(), len(want), text(testid(doc, "privacy")))
	}
	rows.Each(func(_ int, row *goquery.Selection) {
		id := row.AttrOr("data-finding", "")
		key, ok := want[id]
		if !ok {
			t.Errorf("unexpected finding %q", id)
			return
		}
		href, ok := testid(row, "privacy-link").Attr("href")
		if !ok {
			t.Errorf("finding %q has no link", id)
			return
		}
		list := p.get(t, href, http.StatusOK)
		if got := testid(list, "entry-row"); got.Length() != 1 || !strings.Contains(text(got), "/"+key) {
			t.Errorf("finding %q links to %s, which lists %q, want only %s", id, href, text(got), key)
		}
		// The list says what it is narrowed to, and its form keeps it.
		if testid(list, "linked-filter").Length() == 0 {
			t.Errorf("%s does not say what it is narrowed to", href)
		}
	})
}

// The panels the page asks for again (rules, top entries) show the hits
// since the page was drawn, without the rest of the page.
func TestOverviewPanelsFollowTheCounters(t *testing.T) {
	p := newPages(t, pagesConfig{})
	p.fetch(t, "/a", "MISS")
	doc := p.get(t, "/", http.StatusOK)
	panels := testid(doc, "overview-panels")
	if got, _ := panels.Attr("hx-get"); got != "/overview/panels" {
		t.Fatalf("the panels ask %q for themselves", got)
	}
	if got := text(testid(panels, "rule-hits")); got != "0" {
		t.Fatalf("rule hits %q before any hit", got)
	}
	p.fetch(t, "/a", "HIT")
	p.fetch(t, "/a", "HIT")
	frag := p.get(t, "/overview/panels", http.StatusOK)
	if frag.Find("header, nav, [data-testid=live-figures]").Length() != 0 {
		t.Error("the panels' answer holds more than the panels")
	}
	if got := text(testid(frag, "rule-hits")); got != "2" {
		t.Errorf("rule hits %q after two hits, want 2", got)
	}
	if got, _ := testid(frag, "overview-panels").Attr("hx-trigger"); got != "every 5s" {
		t.Errorf("the swapped panels poll with %q, want every 5s", got)
	}
}

// A bad ?backend= is a readable page, not the overview of another.
func TestOverviewUnknownBackend(t *testing.T) {
	p := newPages(t, pagesConfig{})
	doc := p.get(t, "/?backend=nope", http.StatusNotFound)
	if got := text(doc.Find("h1")); !strings.Contains(got, "No backend named") {
		t.Errorf("title %q", got)
	}
}

// The Upstreams page shows the runtime bypass switch, and the expiry of a
// request's own override comes from the request.
func TestUpstreamsPageShowsBypassAndRequestRules(t *testing.T) {
	p := newPages(t, pagesConfig{})
	setting := func() string {
		doc := p.get(t, "/upstreams", http.StatusOK)
		return text(testid(doc.Find(`[data-setting="bypassed"]`), "setting-value"))
	}
	if got := setting(); got != "false" {
		t.Fatalf("bypassed %q before the switch", got)
	}
	if err := p.gw.SetBypass("bin", true); err != nil {
		t.Fatal(err)
	}
	if got := setting(); got != "true" {
		t.Errorf("bypassed %q after the switch", got)
	}
	doc := p.get(t, "/upstreams", http.StatusOK)
	var requestRules int
	doc.Find(`[data-testid="rule"]`).Each(func(_ int, r *goquery.Selection) {
		if !strings.HasPrefix(r.AttrOr("data-rule", ""), "request ") {
			return
		}
		requestRules++
		if got := text(testid(r, "rule-expire")); !strings.Contains(got, "from the request") {
			t.Errorf("rule %s: expiry %q, want from the request", r.AttrOr("data-rule", ""), got)
		}
	})
	if requestRules != 2 {
		t.Errorf("%d request rules on the page, want the request's max-age and %s", requestRules, cache.ExpireAfterHeader)
	}
}
