package views_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/cachegate/cachegate/views"
)

func TestEntriesSortLinks(t *testing.T) {
	l := views.Layout{Backend: "archive", DefaultBackend: "default"}
	for _, tc := range []struct {
		name, sort string
		desc       bool
		field      string
		wantOrder  string
	}{
		{"another column starts descending", "created", true, "size", "desc"},
		{"URLs start A to Z", "created", true, "url", "asc"},
		{"the column in force flips", "size", true, "size", "asc"},
		{"and flips back", "size", false, "size", "desc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := views.EntriesView{Sort: tc.sort, Desc: tc.desc, State: url.Values{"upstream": {"bin"}, "sort": {tc.sort}}}
			u, err := url.Parse(v.SortURL(l, tc.field))
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("sort") != tc.field || q.Get("order") != tc.wantOrder || q.Get("upstream") != "bin" || q.Get("backend") != "archive" {
				t.Errorf("link %s, want sort=%s order=%s with the filter and backend", u, tc.field, tc.wantOrder)
			}
		})
	}
}

func TestEntriesTableCells(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	v := views.EntriesView{Now: now, Sort: "expires", Total: 2, TotalBytes: 3 << 10, State: url.Values{},
		Rows: []views.EntryRow{
			{Key: "a", Method: "GET", URL: "https://api.example/v1/users?token=REDACTED", Upstream: "api", Status: 200, Size: 2048,
				Created: now.Add(-time.Hour), Expires: now.Add(5 * time.Minute)},
			{Key: "b", Method: "GET", URL: "https://api.example/v1/old", Upstream: "api", Status: 404, Size: 1024,
				Created: now.Add(-3 * time.Hour), Expires: now.Add(-2 * time.Hour), Expired: true},
			{Key: "c", Method: "POST", URL: "https://api.example/v1/q", Upstream: "api", Status: 200, Created: now},
		}}
	doc := render(t, views.Entries(views.Layout{Backend: "default", DefaultBackend: "default"}, v))
	var expires, urls, titles []string
	byTestID(doc, "entry-expires").Each(func(_ int, s *goquery.Selection) { expires = append(expires, strings.TrimSpace(s.Text())) })
	byTestID(doc, "entry-url").Each(func(_ int, s *goquery.Selection) {
		urls = append(urls, s.Text())
		titles = append(titles, s.AttrOr("title", ""))
	})
	if got, want := strings.Join(expires, "|"), "in 5 min|expired 2 h ago|never"; got != want {
		t.Errorf("expires %q, want %q", got, want)
	}
	if urls[0] != "/v1/users?token=REDACTED" || titles[0] != "https://api.example/v1/users?token=REDACTED" {
		t.Errorf("URL cell %q, title %q", urls[0], titles[0])
	}
	if got := byTestID(doc, "entry-size").First().Text(); got != "2.0 KiB" {
		t.Errorf("size %q", got)
	}
	if got := byTestID(doc, "sort-expires").AttrOr("aria-sort", ""); got != "ascending" {
		t.Errorf("aria-sort %q", got)
	}
	for _, s := range []string{"sort-size", "sort-url", "sort-created", "sort-hits"} {
		if _, ok := byTestID(doc, s).Attr("aria-sort"); ok {
			t.Errorf("%s has aria-sort though the table is sorted by expiry", s)
		}
	}
}
