package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// startEntriesServer runs cachegate over a SQLite file (and a memory
// backend "scratch") with two upstreams on one real httpbin: "bin" with
// twelve responses whose sizes and lifetimes (Cache-Control max-age,
// honoured) run in different orders, and "alt" with three.
func startEntriesServer(tb testing.TB) *web.Server {
	tb.Helper()
	bin := startHTTPBin(tb)
	policy := cache.DefaultPolicy(cache.Expiry(time.Hour))
	policy.CacheControl = true
	srv := startServer(tb, web.Config{
		Backend:  sqliteDSN(tb),
		Backends: map[string]string{"scratch": "memory://?max_size=16MiB"},
		Upstreams: []web.UpstreamConfig{
			{Name: "bin", URL: bin, Policy: policy},
			{Name: "alt", URL: bin, Policy: policy},
		},
	})
	for i := 0; i < 12; i++ {
		maxAge := ((i*7)%12 + 1) * 600
		pad := strings.Repeat("x", ((i*5)%12+1)*150)
		wantCache(tb, get(tb, fmt.Sprintf("%s/fetch/bin/response-headers?Cache-Control=max-age%%3D%d&n=%02d&pad=%s", srv.URL(), maxAge, i, pad)), "MISS")
	}
	for i := 0; i < 3; i++ {
		wantCache(tb, get(tb, fmt.Sprintf("%s/fetch/alt/get?alt=%d", srv.URL(), i)), "MISS")
	}
	return srv
}

// rowAttr returns attr of every row's cell marked data-testid=cell, in
// the table's order.
func rowAttr(tb testing.TB, b *browser, cell, attr string) []string {
	tb.Helper()
	var out []string
	run(tb, b, chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll('[data-testid="entry-row"] [data-testid=%q]')].map(e => e.getAttribute(%q))`, cell, attr), &out))
	return out
}

func rowCount(tb testing.TB, b *browser) int { return testCount(tb, b, byTestID("entry-row")) }

// waitRows waits until the table has n rows (htmx swaps it).
//
// A click may load a whole page rather than swap the table (before htmx
// has loaded, the links are plain links): the poll's script context then
// goes with the old page, and the poll starts again on the new one.
func waitRows(n int) chromedp.Action {
	expr := fmt.Sprintf(`document.querySelectorAll('[data-testid="entry-row"]').length === %d`, n)
	return chromedp.ActionFunc(func(ctx context.Context) error {
		for attempt := 0; ; attempt++ {
			err := chromedp.Poll(expr, nil, chromedp.WithPollingTimeout(20*time.Second)).Do(ctx)
			if err == nil || attempt == 5 || !strings.Contains(err.Error(), "Cannot find context") {
				return err
			}
		}
	})
}

// waitAriaSort waits until the column sorts in order.
func waitAriaSort(field, order string) chromedp.Action {
	return chromedp.WaitVisible(fmt.Sprintf(`[data-testid="sort-%s"][aria-sort=%q]`, field, order), chromedp.ByQuery)
}

// ordinals reads attribute values as numbers ("never" as the largest).
func ordinals(tb testing.TB, vals []string) []int64 {
	tb.Helper()
	out := make([]int64, len(vals))
	for i, s := range vals {
		if s == "never" {
			out[i] = 1<<63 - 1
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			tb.Fatalf("value %q: %v", s, err)
		}
		out[i] = n
	}
	return out
}

func wantSorted(tb testing.TB, what string, vals []int64, desc bool) {
	tb.Helper()
	if len(vals) < 2 {
		tb.Fatalf("%s: %d rows, too few to tell an order", what, len(vals))
	}
	want := slices.Clone(vals)
	slices.Sort(want)
	if desc {
		slices.Reverse(want)
	}
	if !slices.Equal(vals, want) || vals[0] == vals[len(vals)-1] {
		tb.Errorf("%s: rows in order %v, want %v", what, vals, want)
	}
}

func TestBrowserEntries(t *testing.T) {
	srv := startEntriesServer(t)
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/entries?sort=size"), chromedp.WaitVisible(byTestID("entry-row"), chromedp.ByQuery))
			if got := rowCount(t, b); got != 15 {
				t.Errorf("%d rows, want 15", got)
			}
			if got, want := testText(t, b, "entries-total"), "15 entries"; got != want {
				t.Errorf("total %q, want %q", got, want)
			}
			wantSorted(t, "sort=size", ordinals(t, rowAttr(t, b, "entry-size", "data-bytes")), true)
			noHorizontalScroll(t, b, "/entries at "+v.name)
			browserErrors(t, b, "/entries at "+v.name)
			screenshot(t, b, "entries-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "entries-"+v.name+"-dark")
			run(t, b, darkMode(false))
		})
	}
	run(t, b, emulate(desktop))

	t.Run("filter by upstream and URL", func(t *testing.T) {
		run(t, b, chromedp.Navigate(srv.URL()+"/entries"), chromedp.WaitVisible(byTestID("filter-form"), chromedp.ByQuery),
			chromedp.SetValue(byTestID("filter-upstream"), "alt", chromedp.ByQuery),
			chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
			waitRows(3),
		)
		var ups []string
		run(t, b, chromedp.Evaluate(`[...document.querySelectorAll('[data-testid="entry-upstream"]')].map(e => e.textContent.trim())`, &ups))
		if !slices.Equal(ups, []string{"alt", "alt", "alt"}) {
			t.Errorf("upstreams %v, want alt only", ups)
		}
		if u, _ := url.Parse(location(t, b)); u.Query().Get("upstream") != "alt" || strings.Contains(u.RawQuery, "url=") {
			t.Errorf("the address %s does not hold the filter alone", u)
		}
		// A glob on the URL, with the upstream cleared.
		run(t, b,
			chromedp.SetValue(byTestID("filter-upstream"), "", chromedp.ByQuery),
			chromedp.SetValue(byTestID("filter-url"), "*n=0?*", chromedp.ByQuery),
			chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
			waitRows(10),
		)
		var urls []string
		run(t, b, chromedp.Evaluate(`[...document.querySelectorAll('[data-testid="entry-url"]')].map(e => e.title)`, &urls))
		for _, u := range urls {
			if !strings.Contains(u, "&n=0") {
				t.Errorf("row %s does not match *n=0?*", u)
			}
		}
		// A bad value says so next to the form; the table stays.
		run(t, b,
			chromedp.Click(byTestID("more-filters")+" summary", chromedp.ByQuery),
			chromedp.SetValue(byTestID("filter-min-size"), "lots", chromedp.ByQuery),
			chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("filter-error"), chromedp.ByQuery),
		)
		if got := testText(t, b, "filter-error"); !strings.Contains(got, "min_size") {
			t.Errorf("message %q does not name min_size", got)
		}
		if got := rowCount(t, b); got != 10 {
			t.Errorf("%d rows after a bad filter, want the 10 shown before", got)
		}
		screenshot(t, b, "entries-bad-filter-desktop")
		browserErrors(t, b, "filter")
	})

	t.Run("sort by size and expiry", func(t *testing.T) {
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?upstream=bin"), waitRows(12),
			chromedp.Click(byTestID("sort-size")+" a", chromedp.ByQuery), waitAriaSort("size", "descending"))
		wantSorted(t, "size descending", ordinals(t, rowAttr(t, b, "entry-size", "data-bytes")), true)
		run(t, b, chromedp.Click(byTestID("sort-size")+" a", chromedp.ByQuery), waitAriaSort("size", "ascending"))
		wantSorted(t, "size ascending", ordinals(t, rowAttr(t, b, "entry-size", "data-bytes")), false)
		run(t, b, chromedp.Click(byTestID("sort-expires")+" a", chromedp.ByQuery), waitAriaSort("expires", "descending"))
		wantSorted(t, "expires descending", ordinals(t, rowAttr(t, b, "entry-expires", "data-expires")), true)
		run(t, b, chromedp.Click(byTestID("sort-expires")+" a", chromedp.ByQuery), waitAriaSort("expires", "ascending"))
		wantSorted(t, "expires ascending", ordinals(t, rowAttr(t, b, "entry-expires", "data-expires")), false)
		if u, _ := url.Parse(location(t, b)); u.Query().Get("sort") != "expires" || u.Query().Get("order") != "asc" || u.Query().Get("upstream") != "bin" {
			t.Errorf("the address %s does not hold the sort and filter", u)
		}
		browserErrors(t, b, "sort")
	})

	t.Run("page forward and back", func(t *testing.T) {
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?upstream=bin&limit=5&sort=size&order=asc"), waitRows(5))
		first := rowAttr(t, b, "entry-check", "value")
		run(t, b, chromedp.Click(byTestID("page-next"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("page-prev"), chromedp.ByQuery))
		second := rowAttr(t, b, "entry-check", "value")
		if slices.Equal(first, second) || len(second) != 5 {
			t.Fatalf("page 2 %v after page 1 %v", second, first)
		}
		run(t, b, chromedp.Click(byTestID("page-next"), chromedp.ByQuery), waitRows(2))
		screenshot(t, b, "entries-last-page-desktop")
		run(t, b, chromedp.Click(byTestID("page-prev"), chromedp.ByQuery), waitRows(5))
		if got := rowAttr(t, b, "entry-check", "value"); !slices.Equal(got, second) {
			t.Errorf("back to page 2: %v, want %v", got, second)
		}
		run(t, b, chromedp.Click(byTestID("page-prev"), chromedp.ByQuery), chromedp.WaitNotPresent(byTestID("page-prev"), chromedp.ByQuery))
		if got := rowAttr(t, b, "entry-check", "value"); !slices.Equal(got, first) {
			t.Errorf("back to page 1: %v, want %v", got, first)
		}
		// The address is the view: reloading it shows the same rows.
		run(t, b, chromedp.Reload(), waitRows(5))
		if got := rowAttr(t, b, "entry-check", "value"); !slices.Equal(got, first) {
			t.Errorf("page 1 reloaded: %v, want %v", got, first)
		}
		// The browser's back button returns to the page before (htmx
		// pushed each one), drawn whole.
		run(t, b, chromedp.Click(byTestID("page-next"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("page-prev"), chromedp.ByQuery))
		run(t, b, chromedp.NavigateBack(), chromedp.WaitNotPresent(byTestID("page-prev"), chromedp.ByQuery), waitRows(5))
		if got := rowAttr(t, b, "entry-check", "value"); !slices.Equal(got, first) {
			t.Errorf("back button to page 1: %v, want %v", got, first)
		}
		if got := testCount(t, b, byTestID("topbar")); got != 1 {
			t.Errorf("%d headers after going back, want 1", got)
		}
		browserErrors(t, b, "paging")
	})

	t.Run("export NDJSON", func(t *testing.T) {
		dir := t.TempDir()
		done := make(chan string, 1)
		chromedp.ListenTarget(b.ctx, func(ev any) {
			if p, ok := ev.(*cdpbrowser.EventDownloadProgress); ok && p.State == cdpbrowser.DownloadProgressStateCompleted {
				select {
				case done <- p.GUID:
				default:
				}
			}
		})
		run(t, b,
			cdpbrowser.SetDownloadBehavior(cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(dir).WithEventsEnabled(true),
			chromedp.Navigate(srv.URL()+"/entries?upstream=alt"), waitRows(3),
			chromedp.Click(byTestID("select-all"), chromedp.ByQuery),
			chromedp.Click(byTestID("bulk-export-ndjson"), chromedp.ByQuery),
		)
		var guid string
		select {
		case guid = <-done:
		case <-b.ctx.Done():
			t.Fatal("no download")
		}
		f, err := os.Open(filepath.Join(dir, guid))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		var lines []map[string]any
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %d: %v", len(lines)+1, err)
			}
			lines = append(lines, m)
		}
		if len(lines) != 4 || lines[0]["format"] != "cachegate-export" {
			t.Fatalf("%d lines, want a header and 3 entries", len(lines))
		}
		for _, m := range lines[1:] {
			if m["upstream"] != "alt" {
				t.Errorf("exported an entry of %v", m["upstream"])
			}
		}
		browserErrors(t, b, "export")
	})

	t.Run("copy a filter to another backend", func(t *testing.T) {
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?backend=scratch"), chromedp.WaitVisible(byTestID("empty-state"), chromedp.ByQuery))
		if got := testText(t, b, "empty-state"); !strings.Contains(got, "Nothing cached yet") {
			t.Errorf("empty backend: %q", got)
		}
		screenshot(t, b, "entries-empty-desktop")
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?upstream=bin&sort=url"), waitRows(12),
			chromedp.Click(byTestID("select-all"), chromedp.ByQuery),
			chromedp.SetValue(byTestID("bulk-to"), "scratch", chromedp.ByQuery),
			chromedp.Click(byTestID("bulk-copy"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("job-notice"), chromedp.ByQuery),
			// live.js follows the job over the websocket until it ends.
			chromedp.WaitVisible(byTestID("job-notice")+`[data-state="done"]`, chromedp.ByQuery),
		)
		if got := testText(t, b, "job-notice"); !strings.Contains(got, "12 of 12 done, 0 failed") {
			t.Errorf("job notice %q", got)
		}
		if u, _ := url.Parse(location(t, b)); u.Query().Get("upstream") != "bin" || u.Query().Get("job") == "" {
			t.Errorf("after copying: %s, want the same list with the job", u)
		}
		screenshot(t, b, "entries-copied-desktop")
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?backend=scratch"), waitRows(12))
		if got, want := testText(t, b, "entries-total"), "12 entries"; got != want {
			t.Errorf("scratch holds %q, want %q", got, want)
		}
		browserErrors(t, b, "copy")
	})

	t.Run("bulk delete all matching a filter", func(t *testing.T) {
		run(t, b, chromedp.Navigate(srv.URL()+"/entries?upstream=alt"), waitRows(3),
			chromedp.Click(byTestID("select-all"), chromedp.ByQuery),
			chromedp.Click(byTestID("bulk-delete"), chromedp.ByQuery),
			chromedp.WaitVisible(byTestID("delete-dialog"), chromedp.ByQuery),
		)
		if got := testText(t, b, "delete-dialog-text"); !strings.Contains(got, "Delete 3 entries (") {
			t.Errorf("dialog %q", got)
		}
		screenshot(t, b, "entries-delete-dialog-desktop")
		run(t, b, chromedp.Click(byTestID("delete-dialog-confirm"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("notice"), chromedp.ByQuery))
		if got := testText(t, b, "notice"); !strings.HasPrefix(got, "Deleted 3 entries (") {
			t.Errorf("notice %q", got)
		}
		if got := testCount(t, b, byTestID("empty-state")); got != 1 {
			t.Error("rows left for upstream alt")
		}
		screenshot(t, b, "entries-deleted-desktop")
		run(t, b, chromedp.Navigate(srv.URL()+"/entries"), waitRows(12))
		if got, want := testText(t, b, "entries-total"), "12 entries"; got != want {
			t.Errorf("total after the delete %q, want %q", got, want)
		}
		browserErrors(t, b, "bulk delete")
	})
}

func TestBrowserEntriesWithoutScripts(t *testing.T) {
	srv := startEntriesServer(t)
	b := newBrowser(t)
	run(t, b, emulation.SetScriptExecutionDisabled(true))
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/entries"), chromedp.WaitVisible(byTestID("entry-row"), chromedp.ByQuery),
				chromedp.SetValue(byTestID("filter-upstream"), "alt", chromedp.ByQuery),
				chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
				// Without script the page reloads: wait for the new one.
				chromedp.WaitReady(byTestID("filter-upstream")+` option[value="alt"][selected]`, chromedp.ByQuery),
			)
			if u, _ := url.Parse(location(t, b)); u.Query().Get("upstream") != "alt" {
				t.Errorf("after filtering without scripts: %s", u)
			}
			if got := rowCount(t, b); got != 3 {
				t.Errorf("%d rows after filtering, want 3", got)
			}
			// Sorting is a link in the header, and on a phone (where the
			// header is hidden) the form's Sort by.
			if v.mobile {
				run(t, b,
					chromedp.SetValue(byTestID("filter-sort"), "url", chromedp.ByQuery),
					chromedp.SetValue(byTestID("filter-order"), "asc", chromedp.ByQuery),
					chromedp.Click(byTestID("filter-apply"), chromedp.ByQuery),
					chromedp.WaitReady(byTestID("sort-url")+`[aria-sort="ascending"]`, chromedp.ByQuery))
			} else {
				run(t, b, chromedp.Click(byTestID("sort-url")+" a", chromedp.ByQuery), waitAriaSort("url", "ascending"))
			}
			if got := rowCount(t, b); got != 3 {
				t.Errorf("%d rows after sorting, want 3", got)
			}
			noHorizontalScroll(t, b, "no script at "+v.name)
			screenshot(t, b, "entries-noscript-"+v.name)
		})
	}
	// Delete without script asks on a page of its own.
	run(t, b, emulate(desktop), chromedp.Navigate(srv.URL()+"/entries?upstream=alt"), chromedp.WaitVisible(byTestID("entry-row"), chromedp.ByQuery),
		chromedp.Click(byTestID("select-all"), chromedp.ByQuery),
		chromedp.Click(byTestID("bulk-delete"), chromedp.ByQuery),
		chromedp.WaitVisible(byTestID("delete-confirm"), chromedp.ByQuery),
	)
	if got := testText(t, b, "delete-confirm-text"); !strings.Contains(got, "Delete 3 entries") {
		t.Errorf("confirmation %q", got)
	}
	screenshot(t, b, "entries-confirm-noscript-desktop")
	run(t, b, darkMode(true))
	screenshot(t, b, "entries-confirm-noscript-desktop-dark")
	run(t, b, darkMode(false), chromedp.Click(byTestID("delete-confirm-submit"), chromedp.ByQuery), chromedp.WaitVisible(byTestID("notice"), chromedp.ByQuery))
	if got := testText(t, b, "notice"); !strings.HasPrefix(got, "Deleted 3 entries") {
		t.Errorf("notice %q", got)
	}
	browserErrors(t, b, "without scripts")
}
