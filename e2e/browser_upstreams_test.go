package e2e_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// rulesSecret is a revalidate_headers value; no page may show it.
const rulesSecret = "rv-secret-e2e-91c"

// startRulesServer runs cachegate over a SQLite file and a memory
// backend with two httpbin upstreams: "bin" in requests-cache mode with
// URL rules, cache_control and an ignored parameter, and "rfc" in rfc9111
// mode on the memory backend. Requests through /fetch/ give each rule
// entries: /get* 2, /json 1, cache_control 1, expire_after 1; rfc's
// max-age 1.
func startRulesServer(tb testing.TB) *web.Server {
	tb.Helper()
	bin := startHTTPBin(tb)
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.CacheControl = true
	p.IgnoredParameters = []string{"api_key"}
	p.URLsExpireAfter = []cache.URLRule{
		{Pattern: "/get*", Expire: cache.Expiry(10 * time.Minute)},
		{Pattern: "/json", Expire: cache.NeverExpire},
		{Pattern: "/status/*", Expire: cache.DoNotCache},
	}
	rfc := cache.DefaultPolicy(cache.Expiry(time.Hour))
	rfc.Mode = cache.ModeRFC9111
	srv := startServer(tb, web.Config{
		Backend:  sqliteDSN(tb),
		Backends: map[string]string{"scratch": "memory://?max_size=16MiB"},
		Upstreams: []web.UpstreamConfig{
			{Name: "bin", URL: bin, Policy: p, RevalidateHeaders: http.Header{"X-Api-Token": {rulesSecret}}},
			{Name: "rfc", URL: bin, Policy: rfc, Backend: "scratch"},
		},
	})
	for _, path := range []string{"/bin/get?page=1&api_key=k-secret", "/bin/get?page=2", "/bin/json", "/bin/cache/60", "/bin/uuid", "/rfc/cache/60"} {
		wantCache(tb, get(tb, srv.URL()+"/fetch"+path), "MISS")
	}
	wantCache(tb, get(tb, srv.URL()+"/fetch/bin/json"), "HIT")
	return srv
}

// ruleCounts reads the Upstreams page's rules of one upstream as
// "rule pattern=count".
func ruleCounts(tb testing.TB, b *browser, upstream string) string {
	tb.Helper()
	var rows []string
	run(tb, b, chromedp.Evaluate(`[...document.querySelectorAll('[data-upstream="`+upstream+`"] [data-testid="rule"]')].map(r =>
		(r.dataset.rule + " " + r.dataset.pattern).trim() + "=" + r.querySelector('[data-testid="rule-count"]').textContent.trim())`, &rows))
	return strings.Join(rows, ", ")
}

func TestBrowserUpstreams(t *testing.T) {
	srv := startRulesServer(t)
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/upstreams"), chromedp.WaitVisible(byTestID("rules"), chromedp.ByQuery))
			if got, want := ruleCounts(t, b, "bin"), "cache_control=1, request Cache-Control: max-age=0, request X-Cachegate-Expire-After=0, urls_expire_after /get*=2, urls_expire_after /json=1, urls_expire_after /status/*=0, expire_after=1"; got != want {
				t.Errorf("bin rules\n %s\nwant\n %s", got, want)
			}
			if got, want := ruleCounts(t, b, "rfc"), "CDN-Cache-Control: s-maxage=0, CDN-Cache-Control: max-age=0, Cache-Control: s-maxage=0, Cache-Control: max-age=1, Expires=0, heuristic freshness=0, no freshness information=0"; got != want {
				t.Errorf("rfc rules\n %s\nwant\n %s", got, want)
			}
			var href string
			run(t, b, chromedp.AttributeValue(`[data-upstream="bin"] [data-pattern="/get*"] a[data-testid="rule-count"]`, "href", &href, nil, chromedp.ByQuery))
			q, err := url.ParseQuery(strings.TrimPrefix(href, "/entries?"))
			if err != nil || !strings.HasPrefix(href, "/entries?") || q.Get("upstream") != "bin" || q.Get("reason") != `urls_expire_after pattern "/get*" ` {
				t.Errorf("the /get* count links to %q", href)
			}
			var html string
			run(t, b, chromedp.OuterHTML("html", &html, chromedp.ByQuery))
			if strings.Contains(html, rulesSecret) || strings.Contains(html, "k-secret") {
				t.Error("the Upstreams page shows a secret")
			}
			noHorizontalScroll(t, b, "/upstreams at "+v.name)
			browserErrors(t, b, "/upstreams at "+v.name)
			screenshot(t, b, "upstreams-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "upstreams-"+v.name+"-dark")
			run(t, b, darkMode(false))
		})
	}
}

// explainAndWait fills the Explain form with rawURL, submits it and waits
// for the explanation.
func explainAndWait(rawURL string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.WaitVisible(byTestID("explain-url"), chromedp.ByQuery),
		chromedp.SendKeys(byTestID("explain-url"), rawURL, chromedp.ByQuery),
		chromedp.Click(byTestID("explain-submit"), chromedp.ByQuery),
	}
}

// wonRule is the rule chain's winning step as "rule pattern".
func wonRule(tb testing.TB, b *browser) string {
	tb.Helper()
	var s string
	run(tb, b, chromedp.Evaluate(`(() => { const w = document.querySelector('[data-testid="chain-step"][data-state="won"]'); return w ? (w.dataset.rule + " " + w.dataset.pattern).trim() : ""; })()`, &s))
	return s
}

func TestBrowserExplain(t *testing.T) {
	srv := startRulesServer(t)
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			// With scripts on, htmx swaps the explanation in and puts the
			// form's state in the address.
			run(t, b, emulate(v), chromedp.Navigate(srv.URL()+"/explain"), chromedp.WaitVisible(byTestID("empty-state"), chromedp.ByQuery))
			noHorizontalScroll(t, b, "/explain at "+v.name)
			screenshot(t, b, "explain-empty-"+v.name)
			run(t, b, explainAndWait(srv.URL()+"/fetch/bin/get?page=1&api_key=typed-secret"),
				chromedp.WaitVisible(byTestID("explanation"), chromedp.ByQuery))
			if got := wonRule(t, b); got != "urls_expire_after /get*" {
				t.Errorf("winning rule %q, want urls_expire_after /get*", got)
			}
			if got := testText(t, b, "explain-upstream-name"); got != "bin" {
				t.Errorf("upstream %q", got)
			}
			if got := testText(t, b, "cached-answer"); got != "HIT" {
				t.Errorf("answer now %q, want HIT", got)
			}
			var link string
			run(t, b, chromedp.AttributeValue(byTestID("cached-link"), "href", &link, nil, chromedp.ByQuery))
			if key := testText(t, b, "explain-key"); link != "/entries/"+key {
				t.Errorf("entry link %q for key %q", link, key)
			}
			if loc := location(t, b); !strings.Contains(loc, "/explain?") || !strings.Contains(loc, "url=") {
				t.Errorf("the address %q does not hold the form", loc)
			}
			if got := testText(t, b, "explain-url-value"); strings.Contains(got, "typed-secret") || !strings.Contains(got, "api_key=REDACTED") {
				t.Errorf("upstream URL shown as %q", got)
			}
			noHorizontalScroll(t, b, "/explain result at "+v.name)
			browserErrors(t, b, "/explain at "+v.name)
			screenshot(t, b, "explain-"+v.name)
			run(t, b, darkMode(true))
			screenshot(t, b, "explain-"+v.name+"-dark")
			run(t, b, darkMode(false))

			// A URL no upstream takes: the readable message replaces the
			// result, in place.
			run(t, b, chromedp.Evaluate(`document.querySelector('[data-testid="explain-url"]').value = ""`, nil),
				explainAndWait("https://nowhere.example/x"),
				chromedp.WaitVisible(byTestID("explain-error"), chromedp.ByQuery))
			if got := testText(t, b, "explain-error-title"); !strings.Contains(got, "No upstream matches this URL: configured ones are bin (") {
				t.Errorf("error %q", got)
			}
			if n := testCount(t, b, byTestID("explanation")); n != 0 {
				t.Error("the old explanation stays beside the error")
			}
			// The 400 itself is logged by the browser; nothing else may be.
			browserErrorsBut(t, b, "/explain error at "+v.name, "status of 400")
			screenshot(t, b, "explain-error-"+v.name)

			// A response the upstream sent and the rules refused: the page
			// says so from what was really answered.
			get(t, srv.URL()+"/fetch/bin/status/418")
			run(t, b, chromedp.Evaluate(`document.querySelector('[data-testid="explain-url"]').value = ""`, nil),
				explainAndWait("/fetch/bin/status/418"),
				chromedp.WaitVisible(byTestID("last-not-stored"), chromedp.ByQuery))
			if got := testText(t, b, "last-not-stored-reason"); !strings.Contains(got, "status 418 is not in allowable_codes") {
				t.Errorf("last not stored: %q", got)
			}
			if got := testText(t, b, "verdict"); !strings.Contains(got, "Would not be stored") {
				t.Errorf("verdict %q", got)
			}
			browserErrors(t, b, "/explain not stored at "+v.name)
			screenshot(t, b, "explain-not-stored-"+v.name)
		})
	}
}

func TestBrowserExplainWithoutScripts(t *testing.T) {
	srv := startRulesServer(t)
	b := newBrowser(t)
	for _, v := range viewports {
		t.Run(v.name, func(t *testing.T) {
			run(t, b, emulation.SetScriptExecutionDisabled(true), emulate(v), chromedp.Navigate(srv.URL()+"/explain"),
				explainAndWait(srv.URL()+"/fetch/bin/json"),
				chromedp.WaitVisible(byTestID("explanation"), chromedp.ByQuery))
			if loc := location(t, b); !strings.HasPrefix(loc, srv.URL()+"/explain?") || !strings.Contains(loc, "url=") {
				t.Fatalf("the plain form went to %q", loc)
			}
			if got := testText(t, b, "chain-reason"); !strings.Contains(got, `urls_expire_after pattern "/json" says never expire`) {
				t.Errorf("the winning rule says %q", got)
			}
			if got := testText(t, b, "verdict"); !strings.Contains(got, "never expiring") {
				t.Errorf("verdict %q", got)
			}
			screenshot(t, b, "explain-noscript-"+v.name)
			run(t, b, emulation.SetScriptExecutionDisabled(false))
			browserErrors(t, b, "/explain without scripts at "+v.name)
		})
	}
}

// browserErrorsBut is browserErrors for a step that expects the browser
// to log an error containing expected (a 4xx it was meant to get).
func browserErrorsBut(tb testing.TB, b *browser, where, expected string) {
	tb.Helper()
	b.mu.Lock()
	errs := b.errors
	b.errors = nil
	b.mu.Unlock()
	var other []string
	for _, e := range errs {
		if !strings.Contains(e, expected) {
			other = append(other, e)
		}
	}
	if len(other) > 0 {
		tb.Errorf("%s: the browser reported:\n  %s", where, strings.Join(other, "\n  "))
	}
}
