package views_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/views"
)

// The Explanation component stands alone (the entry detail page embeds
// it): the verdict, the chain with one rule marked, the refusal and the
// entry each show from the model.
func TestExplanation(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	m := views.ExplainModel{
		Upstream: "github", Backend: "default", Mode: "requests-cache", Method: "GET",
		URL: "https://api.github.com/repos/x?token=REDACTED", Key: "k1",
		KeyParts: []views.KeyPartRow{{Part: "upstream", Value: "github"}, {Part: "url", Value: "https://api.github.com/repos/x"},
			{Part: "header Accept-Language"}},
		Cacheable: true, Assumed: "the headers of the cached response",
		Store: true, Rule: "urls_expire_after", Reason: `urls_expire_after pattern "/repos/*" gives 1h0m0s`, Expires: now.Add(time.Hour),
		Chain: []views.ChainRow{
			{Rule: "urls_expire_after", Pattern: "/repos/*", Expire: "1h0m0s", State: "won", Won: true},
			{Rule: "expire_after", Expire: "1d", State: "not_reached"},
		},
		LastNotStored: &views.RefusalRow{Status: 500, Rule: "allowable_codes", Reason: "status 500 is not in allowable_codes [200]", At: now.Add(-time.Minute)},
		Cached:        &views.CachedRow{Key: "k1", Link: "/entries/k1", Fresh: true, Expires: now.Add(30 * time.Minute), AgeSec: 90, Hits: 3, Answer: "HIT", Why: "fresh", Stored: "urls_expire_after ..."},
		Now:           now,
	}
	doc := render(t, views.Explanation(m))
	if got := byTestID(doc, "verdict").Text(); !strings.Contains(got, "Would be stored") || !strings.Contains(got, "fresh for 1 h") {
		t.Errorf("verdict %q", got)
	}
	if won := byTestID(doc, "chain-step").Filter(".won"); won.Length() != 1 || won.AttrOr("data-pattern", "") != "/repos/*" {
		t.Errorf("the winning rule is not marked once")
	}
	if got := byTestID(doc, "chain-reason").Text(); got != m.Reason {
		t.Errorf("winner's reason %q", got)
	}
	if got := byTestID(doc, "last-not-stored-status").Text(); got != "500" {
		t.Errorf("refusal status %q", got)
	}
	if got := byTestID(doc, "cached-link").AttrOr("href", ""); got != "/entries/k1" {
		t.Errorf("entry link %q", got)
	}
	if got := byTestID(doc, "cached-expires").Text(); !strings.Contains(got, "in 30 min") {
		t.Errorf("expires %q", got)
	}
	// A matched header the request did not send says so, not a blank.
	if got := byTestID(doc, "key-part-value").Last().Text(); got != "(not sent)" {
		t.Errorf("an unsent header's key part reads %q", got)
	}

	m.Store, m.Reason, m.Cached, m.LastNotStored = false, "the upstream said Cache-Control: no-store", nil, nil
	m.Chain = []views.ChainRow{{Rule: "expire_after", State: "not_reached"}}
	doc = render(t, views.Explanation(m))
	if got := byTestID(doc, "verdict").AttrOr("data-store", ""); got != "false" {
		t.Errorf("not stored: data-store %q", got)
	}
	if byTestID(doc, "chain-decided-before").Length() != 1 || byTestID(doc, "cached-none").Length() != 1 {
		t.Error("a refusal before the rules, or the empty cache, is not said")
	}
}
