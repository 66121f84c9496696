package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
)

// entriesFixture is a real SQLite backend holding n entries of upstream
// "bin" (sizes 100, 200, ... and expiries an hour apart, in an order
// neither matches) plus two of upstream "other", behind the pages.
type entriesFixture struct {
	*pages
	b    cache.Backend
	keys map[string]*cache.Entry
}

func newEntriesFixture(tb testing.TB, n int) *entriesFixture {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cache.db")
	b, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	fx := &entriesFixture{b: b, keys: map[string]*cache.Entry{}}
	now := time.Now()
	put := func(i int, up string, size int, expires time.Time) {
		key := fmt.Sprintf("k%03d%s", i, up)
		e := &cache.Entry{
			Key: key, BaseKey: key, Upstream: up, Method: "GET",
			URL:    fmt.Sprintf("http://up.test/item/%03d?token=REDACTED", i),
			Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, ContentType: "application/json",
			Body: []byte(strings.Repeat("x", size)), Size: int64(size),
			Created: now.Add(-time.Duration(i) * time.Minute), RequestTime: now.Add(-time.Duration(i) * time.Minute),
			Expires: expires,
		}
		if err := b.Put(context.Background(), e); err != nil {
			tb.Fatal(err)
		}
		fx.keys[key] = e
	}
	for i := 0; i < n; i++ {
		// Sizes and expiries in different orders, so that a sort that
		// falls back to another field shows.
		put(i, "bin", 100*((i*7)%n+1), now.Add(time.Duration((i*3)%n-n/2)*time.Hour))
	}
	put(900, "other", 5000, time.Time{})
	put(901, "other", 6000, now.Add(-time.Hour))
	fx.pages = newPages(tb, pagesConfig{
		backends: map[string]cache.Backend{"default": b, "scratch": memory.New(1 << 20)},
		dsns:     map[string]string{"default": "sqlite://" + path, "scratch": "memory://"},
	})
	return fx
}

// rowKeys are the keys of the table's rows, in order.
func rowKeys(doc *goquery.Document) []string {
	var keys []string
	testid(doc, "entry-row").Each(func(_ int, s *goquery.Selection) { keys = append(keys, s.AttrOr("data-key", "")) })
	return keys
}

// sortedKeysBy is the keys of fx's entries passing keep, in the order
// less gives.
func (fx *entriesFixture) sortedKeysBy(keep func(*cache.Entry) bool, s cache.Sort) []string {
	var es []*cache.Entry
	for _, e := range fx.keys {
		if keep(e) {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *cache.Entry) int {
		if s.Less(a, b) {
			return -1
		}
		return 1
	})
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return keys
}

func binOnly(e *cache.Entry) bool { return e.Upstream == "bin" }

func TestEntriesPageSortsRows(t *testing.T) {
	fx := newEntriesFixture(t, 12)
	for _, tc := range []struct {
		name, query string
		sort        cache.Sort
	}{
		{"size asc", "sort=size&order=asc", cache.Sort{Field: cache.SortSize}},
		{"size desc", "sort=size&order=desc", cache.Sort{Field: cache.SortSize, Desc: true}},
		{"size default is desc", "sort=size", cache.Sort{Field: cache.SortSize, Desc: true}},
		{"expires asc", "sort=expires&order=asc", cache.Sort{Field: cache.SortExpires}},
		{"expires desc", "sort=expires&order=desc", cache.Sort{Field: cache.SortExpires, Desc: true}},
		{"url", "sort=url", cache.Sort{Field: cache.SortURL}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := fx.get(t, "/entries?upstream=bin&"+tc.query, http.StatusOK)
			got, want := rowKeys(doc), fx.sortedKeysBy(binOnly, tc.sort)
			if !slices.Equal(got, want) {
				t.Fatalf("rows\n got %v\nwant %v", got, want)
			}
			th := testid(doc, "sort-"+string(tc.sort.Field))
			wantAria := "ascending"
			if tc.sort.Desc {
				wantAria = "descending"
			}
			if got := th.AttrOr("aria-sort", ""); got != wantAria {
				t.Errorf("aria-sort %q, want %q", got, wantAria)
			}
			if th.Find(".arrow").Length() != 1 {
				t.Error("no arrow on the sorted column")
			}
			// The header flips the order and keeps the filter.
			link, _ := url.Parse(th.Find("a").AttrOr("href", ""))
			flip := "desc"
			if tc.sort.Desc {
				flip = "asc"
			}
			if q := link.Query(); q.Get("order") != flip || q.Get("upstream") != "bin" || q.Get("sort") != string(tc.sort.Field) {
				t.Errorf("header link %s, want the other order with upstream=bin", link)
			}
		})
	}
}

func TestEntriesPageLinksCarryTheFilter(t *testing.T) {
	fx := newEntriesFixture(t, 12)
	doc := fx.get(t, "/entries?backend=default&upstream=bin&url=item&min_size=1&sort=hits&limit=5", http.StatusOK)
	for _, id := range []string{"sort-size", "sort-expires", "sort-created", "sort-url", "page-next"} {
		sel := testid(doc, id)
		if id != "page-next" {
			sel = sel.Find("a")
		}
		href, ok := sel.Attr("href")
		if !ok {
			t.Fatalf("%s: no link", id)
		}
		u, _ := url.Parse(href)
		q := u.Query()
		if q.Get("upstream") != "bin" || q.Get("url") != "item" || q.Get("min_size") != "1" || q.Get("limit") != "5" {
			t.Errorf("%s: link %s drops the filter", id, href)
		}
		if u.Path != "/entries" {
			t.Errorf("%s: link %s, want /entries", id, href)
		}
		if hx := sel.AttrOr("hx-get", ""); hx != href {
			t.Errorf("%s: hx-get %q differs from href %q", id, hx, href)
		}
	}
	// Rows link to the detail page; the form holds the values as typed.
	if href := testid(doc, "entry-url").First().AttrOr("href", ""); !strings.HasPrefix(href, "/entries/k") {
		t.Errorf("row link %q", href)
	}
	if got := testid(doc, "filter-url").AttrOr("value", ""); got != "item" {
		t.Errorf("url field %q", got)
	}
	if got := testid(doc, "filter-upstream").Find("option[selected]").AttrOr("value", ""); got != "bin" {
		t.Errorf("upstream selected %q", got)
	}
	if got, want := text(testid(doc, "entries-total")), "12 entries"; got != want {
		t.Errorf("total %q, want %q", got, want)
	}
	// The URL shows as stored (redacted), full in the title.
	a := testid(doc, "entry-url").First()
	if !strings.Contains(a.AttrOr("title", ""), "token=REDACTED") {
		t.Errorf("title %q", a.AttrOr("title", ""))
	}
}

func TestEntriesPagePagesForwardAndBack(t *testing.T) {
	fx := newEntriesFixture(t, 23)
	for _, sort := range []string{"size&order=asc", "expires", "url", "created"} {
		t.Run(sort, func(t *testing.T) {
			base := "/entries?upstream=bin&limit=5&sort=" + sort
			first := fx.get(t, base, http.StatusOK)
			pages := [][]string{rowKeys(first)}
			if testid(first, "page-prev").Length() != 0 {
				t.Error("a previous link on the first page")
			}
			doc := first
			// Forward to the end, then back to the start.
			for testid(doc, "page-next").Length() > 0 {
				doc = fx.get(t, testid(doc, "page-next").AttrOr("href", ""), http.StatusOK)
				pages = append(pages, rowKeys(doc))
			}
			if len(pages) != 5 {
				t.Fatalf("%d pages, want 5", len(pages))
			}
			var all []string
			for _, p := range pages {
				all = append(all, p...)
			}
			if len(all) != 23 || len(slices.Compact(slices.Sorted(slices.Values(all)))) != 23 {
				t.Fatalf("the pages hold %d rows (%v), want 23 distinct", len(all), all)
			}
			for i := len(pages) - 2; i >= 0; i-- {
				href, ok := testid(doc, "page-prev").Attr("href")
				if !ok {
					t.Fatalf("no previous link on page %d", i+2)
				}
				doc = fx.get(t, href, http.StatusOK)
				if got := rowKeys(doc); !slices.Equal(got, pages[i]) {
					t.Fatalf("back to page %d:\n got %v\nwant %v", i+1, got, pages[i])
				}
			}
			if testid(doc, "page-prev").Length() != 0 {
				t.Error("a previous link on the first page reached going back")
			}
			if testid(doc, "page-next").Length() != 1 {
				t.Error("no next link on the first page reached going back")
			}
		})
	}
}

func TestEntriesPageBadFilter(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	for _, q := range []string{"min_size=lots", "status=abc", "freshness=old", "created_after=yesterday", "next=garbage", "sort=size&prev=garbage"} {
		t.Run(q, func(t *testing.T) {
			doc := fx.get(t, "/entries?"+q, http.StatusBadRequest)
			msg := text(testid(doc, "filter-error"))
			name, _, _ := strings.Cut(q, "=")
			if strings.Contains(q, "&") {
				name = "prev"
			}
			if !strings.Contains(msg, name) {
				t.Errorf("message %q does not name %s", msg, name)
			}
			if testid(doc, "filter-form").Length() != 1 {
				t.Error("the form is gone")
			}
			if testid(doc, "entries").Length() != 0 {
				t.Error("a table for a filter that could not be read")
			}
		})
	}
	// With htmx, only the message is swapped in: the table and the URL
	// stay as they were.
	rec := httptest.NewRecorder()
	fx.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/entries?min_size=lots", nil, "HX-Request", "true"))
	if rec.Code != http.StatusOK || rec.Header().Get("HX-Retarget") != "#filter-error" || rec.Header().Get("HX-Push-Url") != "false" {
		t.Errorf("htmx bad filter: %d %v", rec.Code, rec.Header())
	}
	if strings.Contains(rec.Body.String(), "<table") || !strings.Contains(rec.Body.String(), "min_size") {
		t.Errorf("htmx bad filter body: %s", rec.Body.String())
	}
}

func TestEntriesPagePartialForHTMX(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	rec := httptest.NewRecorder()
	fx.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/entries?upstream=other", nil, "HX-Request", "true"))
	body := rec.Body.String()
	if rec.Code != http.StatusOK || strings.Contains(body, "<html") || !strings.HasPrefix(strings.TrimSpace(body), `<div id="entries-results"`) {
		t.Fatalf("partial: %d %.200s", rec.Code, body)
	}
	doc, _ := goquery.NewDocumentFromReader(strings.NewReader(body))
	if got := len(rowKeys(doc)); got != 2 {
		t.Errorf("%d rows, want 2", got)
	}
}

func TestEntriesPageEmptyStates(t *testing.T) {
	p := newPages(t, pagesConfig{})
	doc := p.get(t, "/entries", http.StatusOK)
	if got := text(testid(doc, "empty-state")); !strings.Contains(got, "Nothing cached yet") || !strings.Contains(got, "/fetch/") {
		t.Errorf("empty backend: %q", got)
	}
	fx := newEntriesFixture(t, 3)
	doc = fx.get(t, "/entries?url=nothing-like-this&sort=size", http.StatusOK)
	if got := text(testid(doc, "empty-state")); !strings.Contains(got, "No entries match") {
		t.Errorf("nothing matching: %q", got)
	}
	if href := testid(doc, "empty-clear").AttrOr("href", ""); href != "/entries?sort=size" {
		t.Errorf("clear link %q, want /entries?sort=size", href)
	}
}

// csrf reads the page's CSRF token.
func (p *pages) csrf(tb testing.TB) string {
	tb.Helper()
	return p.get(tb, "/entries", http.StatusOK).Find(`meta[name="csrf-token"]`).AttrOr("content", "")
}

// post sends a form the way the bulk bar does.
func (p *pages) post(tb testing.TB, path string, form url.Values) *httptest.ResponseRecorder {
	tb.Helper()
	rec := httptest.NewRecorder()
	r := loopbackRequest(http.MethodPost, path, strings.NewReader(form.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", "http://127.0.0.1:8080", "Sec-Fetch-Site", "same-origin")
	p.router.ServeHTTP(rec, r)
	return rec
}

func (fx *entriesFixture) count(tb testing.TB, f cache.Filter) int64 {
	tb.Helper()
	t, err := fx.b.Count(context.Background(), f)
	if err != nil {
		tb.Fatal(err)
	}
	return t.Entries
}

func TestEntriesBulkDelete(t *testing.T) {
	fx := newEntriesFixture(t, 10)
	token := fx.csrf(t)
	form := url.Values{"csrf_token": {token}, "backend": {"default"}, "upstream": {"other"}, "all": {"1"}, "sort": {"size"}}

	// Without the CSRF token: refused, nothing deleted.
	noToken := url.Values{}
	for k, v := range form {
		if k != "csrf_token" {
			noToken[k] = v
		}
	}
	noToken.Set("confirm", "yes")
	if rec := fx.post(t, "/entries/delete", noToken); rec.Code != http.StatusForbidden {
		t.Fatalf("without CSRF: %d, want 403", rec.Code)
	}
	// From another site, even with the token: refused.
	withToken := url.Values{}
	for k, v := range noToken {
		withToken[k] = v
	}
	withToken.Set("csrf_token", token)
	rec := httptest.NewRecorder()
	fx.router.ServeHTTP(rec, loopbackRequest(http.MethodPost, "/entries/delete", strings.NewReader(withToken.Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("cross-site: %d, want 403", rec.Code)
	}
	if got := fx.count(t, cache.Filter{}); got != 12 {
		t.Fatalf("%d entries after a refused delete, want 12", got)
	}

	// First the confirmation: how many and how many bytes, nothing gone.
	rec = fx.post(t, "/entries/delete", form)
	if rec.Code != http.StatusOK {
		t.Fatalf("confirm page: %d %s", rec.Code, rec.Body.String())
	}
	doc, _ := goquery.NewDocumentFromReader(rec.Body)
	if got := text(testid(doc, "delete-confirm-text")); !strings.Contains(got, "2 entries (11 KiB)") || !strings.Contains(got, "upstream=other") {
		t.Errorf("confirmation %q", got)
	}
	if got := fx.count(t, cache.Filter{}); got != 12 {
		t.Fatalf("the confirmation page deleted: %d entries left", got)
	}
	// The confirmation form repeats the selection; submitting it deletes
	// exactly the filter's entries and comes back with a notice.
	confirm := url.Values{}
	doc.Find(`[data-testid="delete-confirm"] form input[type=hidden]`).Each(func(_ int, s *goquery.Selection) {
		confirm.Add(s.AttrOr("name", ""), s.AttrOr("value", ""))
	})
	rec = fx.post(t, "/entries/delete", confirm)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body.String())
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if loc.Path != "/entries" || loc.Query().Get("upstream") != "other" || loc.Query().Get("sort") != "size" || loc.Query().Get("deleted") != "2" {
		t.Errorf("redirect to %s", loc)
	}
	if got := fx.count(t, cache.Filter{Upstream: "other"}); got != 0 {
		t.Errorf("%d entries of other left", got)
	}
	if got := fx.count(t, cache.Filter{Upstream: "bin"}); got != 10 {
		t.Errorf("%d entries of bin left, want all 10", got)
	}
	doc = fx.get(t, loc.String(), http.StatusOK)
	if got, want := text(testid(doc, "notice")), "Deleted 2 entries (11 KiB)."; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}

	// Ticked rows delete those keys only, whatever the filter says.
	keys := fx.sortedKeysBy(binOnly, cache.Sort{Field: cache.SortURL})[:3]
	rec = fx.post(t, "/entries/delete", url.Values{"csrf_token": {token}, "backend": {"default"}, "key": keys, "confirm": {"yes"}, "upstream": {"bin"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("delete keys: %d %s", rec.Code, rec.Body.String())
	}
	if got := fx.count(t, cache.Filter{}); got != 7 {
		t.Errorf("%d entries left, want 7", got)
	}
	for _, k := range keys {
		if _, ok, _ := fx.b.Get(context.Background(), k); ok {
			t.Errorf("%s is still there", k)
		}
	}
}

func TestEntriesBulkRefusesAnEmptySelection(t *testing.T) {
	fx := newEntriesFixture(t, 4)
	token := fx.csrf(t)
	for _, path := range []string{"/entries/delete", "/entries/revalidate", "/entries/export", "/entries/copy", "/entries/move"} {
		for _, form := range []url.Values{
			{"csrf_token": {token}, "backend": {"default"}, "confirm": {"yes"}, "to": {"scratch"}},
			// A filter without "all" ticked selects nothing either.
			{"csrf_token": {token}, "backend": {"default"}, "confirm": {"yes"}, "upstream": {"bin"}, "to": {"scratch"}},
		} {
			rec := fx.post(t, path, form)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "No entries are selected") {
				t.Errorf("%s %v: %d %.300s", path, form, rec.Code, rec.Body.String())
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("%s: %s, want a page", path, ct)
			}
		}
	}
	if got := fx.count(t, cache.Filter{}); got != 6 {
		t.Errorf("%d entries, want 6", got)
	}
	// "All" with an empty filter is the explicit way to select everything.
	rec := fx.post(t, "/entries/delete", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}, "confirm": {"yes"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("delete all: %d", rec.Code)
	}
	if got := fx.count(t, cache.Filter{}); got != 0 {
		t.Errorf("%d entries after deleting all", got)
	}
}

func TestEntriesBulkExport(t *testing.T) {
	fx := newEntriesFixture(t, 5)
	token := fx.csrf(t)
	rec := fx.post(t, "/entries/export", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}, "upstream": {"other"}, "format": {"ndjson"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("export: %d %s", rec.Code, rec.Body.String())
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".ndjson") {
		t.Errorf("Content-Disposition %q", cd)
	}
	sc := bufio.NewScanner(rec.Body)
	sc.Buffer(nil, 1<<20)
	var keys []string
	for i := 0; sc.Scan(); i++ {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			continue // the header
		}
		keys = append(keys, line["key"].(string))
		if u := line["url"].(string); !strings.Contains(u, "token=REDACTED") {
			t.Errorf("url %q", u)
		}
	}
	slices.Sort(keys)
	if want := []string{"k900other", "k901other"}; !slices.Equal(keys, want) {
		t.Errorf("exported %v, want %v", keys, want)
	}
	rec = fx.post(t, "/entries/export", url.Values{"csrf_token": {token}, "backend": {"default"}, "key": {"k000bin"}, "format": {"har"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Disposition"), ".har") || !strings.Contains(rec.Body.String(), `"log"`) {
		t.Errorf("HAR export: %d %v", rec.Code, rec.Header())
	}
}

func TestEntriesBulkCopyStartsAJob(t *testing.T) {
	fx := newEntriesFixture(t, 5)
	token := fx.csrf(t)
	rec := fx.post(t, "/entries/copy", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}, "upstream": {"other"}, "to": {"scratch"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("copy: %d %s", rec.Code, rec.Body.String())
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	id := loc.Query().Get("job")
	if id == "" {
		t.Fatalf("redirect %s names no job", loc)
	}
	doc := fx.get(t, loc.String(), http.StatusOK)
	n := testid(doc, "job-notice")
	if n.AttrOr("data-job-id", "") != id || testid(n, "job-link").AttrOr("href", "") != "/jobs/"+id {
		t.Errorf("job notice %q", text(n))
	}
	// The job copies exactly the filter's entries into scratch.
	fx.waitJob(t, id)
	doc = fx.get(t, "/entries?backend=scratch", http.StatusOK)
	if got := rowKeys(doc); len(got) != 2 {
		t.Errorf("scratch holds %v, want the two of other", got)
	}
	// Copying to the same store is a readable page.
	rec = fx.post(t, "/entries/copy", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}, "to": {"default"}})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "same store") {
		t.Errorf("copy to itself: %d %.300s", rec.Code, rec.Body.String())
	}
}

func TestEntriesBulkRevalidateStartsAJob(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	token := fx.csrf(t)
	rec := fx.post(t, "/entries/revalidate", url.Values{"csrf_token": {token}, "backend": {"default"}, "key": {"k000bin"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("revalidate: %d %s", rec.Code, rec.Body.String())
	}
	if loc, _ := url.Parse(rec.Header().Get("Location")); loc.Query().Get("job") == "" {
		t.Errorf("redirect %s names no job", loc)
	}
}

func TestEntriesPageStale(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	// An expired entry with a validator is stale; k901other, expired
	// without one, is only expired.
	e := *fx.keys["k000bin"]
	e.Key, e.BaseKey, e.ETag, e.Expires = "withetag", "withetag", `"v1"`, time.Now().Add(-time.Minute)
	if err := fx.b.Put(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	doc := fx.get(t, "/entries?freshness=stale", http.StatusOK)
	if got := rowKeys(doc); !slices.Equal(got, []string{"withetag"}) {
		t.Errorf("stale rows %v, want [withetag]", got)
	}
	doc = fx.get(t, "/entries?freshness=expired&sort=url", http.StatusOK)
	if got := rowKeys(doc); len(got) < 2 || !slices.Contains(got, "withetag") || !slices.Contains(got, "k901other") {
		t.Errorf("expired rows %v, want withetag and k901other among them", got)
	}
}

func TestEntriesPagePickerKeepsTheView(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	doc := fx.get(t, "/entries?upstream=bin&sort=size&deleted=2&freed=10&limit=1", http.StatusOK)
	next := testid(doc, "page-next").AttrOr("href", "")
	doc = fx.get(t, next, http.StatusOK)
	got := map[string]string{}
	testid(doc, "backend-picker").Find("input[type=hidden]").Each(func(_ int, s *goquery.Selection) {
		got[s.AttrOr("name", "")] = s.AttrOr("value", "")
	})
	if got["upstream"] != "bin" || got["sort"] != "size" || got["limit"] != "1" {
		t.Errorf("picker fields %v drop the view", got)
	}
	for _, k := range []string{"next", "prev", "deleted", "freed", "job"} {
		if _, ok := got[k]; ok {
			t.Errorf("picker carries %s to another backend", k)
		}
	}
}

func TestEntriesPageDropsBlankFields(t *testing.T) {
	fx := newEntriesFixture(t, 3)
	rec := httptest.NewRecorder()
	fx.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/entries?upstream=&url=item&status=+&sort=size", nil))
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/entries?sort=size&url=item" {
		t.Errorf("blank fields: %d to %q, want 303 to /entries?sort=size&url=item", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	fx.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/entries?upstream=&url=item", nil, "HX-Request", "true"))
	if rec.Code != http.StatusOK || rec.Header().Get("HX-Push-Url") != "/entries?url=item" {
		t.Errorf("htmx with blank fields: %d, HX-Push-Url %q", rec.Code, rec.Header().Get("HX-Push-Url"))
	}
}

func TestEntriesPagePagesBackFromDeep(t *testing.T) {
	// A thousand pages in (limit=1), previous and next still step one
	// page: the cursors are positions, not page numbers.
	path := filepath.Join(t.TempDir(), "cache.db")
	b, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	const n = 1003
	now := time.Now()
	var es []*cache.Entry
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("deep%04d", i)
		size := (i * 389) % n // every size once, in an order the keys do not follow
		es = append(es, &cache.Entry{Key: key, BaseKey: key, Upstream: "bin", Method: "GET", URL: "http://up.test/" + key,
			Status: 200, Body: []byte(strings.Repeat("x", size)), Size: int64(size), Created: now, RequestTime: now, Expires: now.Add(time.Hour)})
	}
	if err := b.PutMany(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	p := newPages(t, pagesConfig{backends: map[string]cache.Backend{"default": b}, dsns: map[string]string{"default": "sqlite://" + path}})
	s := cache.Sort{Field: cache.SortSize}
	slices.SortFunc(es, func(x, y *cache.Entry) int {
		if s.Less(x, y) {
			return -1
		}
		return 1
	})
	// Page 1,001 of size ascending, reached the way its next link would.
	doc := p.get(t, "/entries?sort=size&order=asc&limit=1&next="+cache.CursorAfter(es[999], s), http.StatusOK)
	for _, step := range []struct {
		link string
		want int
	}{{"", 1000}, {"page-prev", 999}, {"page-prev", 998}, {"page-next", 999}, {"page-next", 1000}, {"page-next", 1001}} {
		if step.link != "" {
			doc = p.get(t, testid(doc, step.link).AttrOr("href", ""), http.StatusOK)
		}
		if got := rowKeys(doc); !slices.Equal(got, []string{es[step.want].Key}) {
			t.Fatalf("after %s: rows %v, want [%s] (entry %d by size)", step.link, got, es[step.want].Key, step.want)
		}
		if u := testid(doc, "page-prev").AttrOr("href", ""); len(u) > 400 {
			t.Errorf("the previous link grew to %d bytes", len(u))
		}
	}
}

// waitJob waits for job id to be done, as GET /api/jobs/ID reports it.
func (p *pages) waitJob(tb testing.TB, id string) {
	tb.Helper()
	// Polled: the job's state is what the test waits for.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		rec := httptest.NewRecorder()
		p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/api/jobs/"+id, nil))
		if strings.Contains(rec.Body.String(), `"state":"done"`) {
			return
		}
		select {
		case <-deadline:
			tb.Fatalf("job not done: %s", rec.Body.String())
		case <-tick.C:
		}
	}
}

func TestEntriesBulkMove(t *testing.T) {
	fx := newEntriesFixture(t, 5)
	token := fx.csrf(t)
	rec := fx.post(t, "/entries/move", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}, "upstream": {"other"}, "to": {"scratch"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("move: %d %s", rec.Code, rec.Body.String())
	}
	loc, _ := url.Parse(rec.Header().Get("Location"))
	fx.waitJob(t, loc.Query().Get("job"))
	if got := fx.count(t, cache.Filter{Upstream: "other"}); got != 0 {
		t.Errorf("%d entries of other left in default", got)
	}
	if got := fx.count(t, cache.Filter{}); got != 5 {
		t.Errorf("default holds %d, want the 5 of bin", got)
	}
	if got := rowKeys(fx.get(t, "/entries?backend=scratch&sort=url", http.StatusOK)); !slices.Equal(got, []string{"k900other", "k901other"}) {
		t.Errorf("scratch holds %v, want the two of other", got)
	}
	if rec := fx.post(t, "/entries/move", url.Values{"csrf_token": {token}, "backend": {"default"}, "all": {"1"}}); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "No backend to move to") {
		t.Errorf("move without a destination: %d", rec.Code)
	}
}
