package handlers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/PuerkitoBio/goquery"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
)

// revalidateSecret is the value of a revalidate_headers entry: no page
// and no API answer may show it.
const revalidateSecret = "rv-secret-7f3a"

// ruleSite is the admin side over a SQLite file and a memory backend,
// with two upstreams on one real upstream server: "api" in requests-cache
// mode with URL rules, cache_control, ignored parameters and
// revalidate_headers, and "rfc" in rfc9111 mode on the memory backend.
type ruleSite struct {
	pages
	db       cache.Backend
	upstream string // the upstream server's base URL
}

func newRuleSite(tb testing.TB) *ruleSite {
	tb.Helper()
	db, err := sqlite.Open("sqlite://" + filepath.Join(tb.TempDir(), "cache.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	scratch := memory.New(1 << 20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch strings.TrimPrefix(r.URL.Path, "/v2") {
		case "/maxage":
			w.Header().Set("Cache-Control", "max-age=60")
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		}
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	tb.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL)
	v2, _ := url.Parse(srv.URL + "/v2")
	api := cache.DefaultPolicy(cache.Expiry(time.Hour))
	api.CacheControl = true
	api.IgnoredParameters = []string{"api_key"}
	api.MatchHeaders = []string{"accept-language"}
	api.StaleIfError = cache.Staleness{On: true, Max: 10 * time.Minute}
	api.URLsExpireAfter = []cache.URLRule{
		{Pattern: "/repos/*", Expire: cache.Expiry(time.Minute)},
		{Pattern: "/users/*", Expire: cache.Expiry(2 * time.Minute)},
		{Pattern: "/static/*", Expire: cache.DoNotCache},
	}
	rfc := cache.DefaultPolicy(cache.Expiry(time.Hour))
	rfc.Mode = cache.ModeRFC9111
	gw, err := gateway.New(gateway.Options{},
		gateway.Upstream{Name: "api", URL: base, Policy: api, Backend: db, BackendName: "default", Timeout: 5 * time.Second,
			RevalidateHeaders: http.Header{"X-Api-Token": {revalidateSecret}}},
		gateway.Upstream{Name: "rfc", URL: v2, Policy: rfc, Backend: scratch, BackendName: "scratch", Timeout: 5 * time.Second},
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	a := handlers.NewAPI(nil, gw, handlers.Options{
		Backends: map[string]cache.Backend{"default": db, "scratch": scratch},
		DSNs:     map[string]string{"default": "sqlite://cache.db", "scratch": "memory://"},
	})
	tb.Cleanup(a.Close)
	r := chi.NewRouter()
	a.Mount(r)
	a.MountPages(r)
	return &ruleSite{pages: pages{router: r, gw: gw}, db: db, upstream: srv.URL}
}

// fetchVia sends GET /fetch/<name><path> through the gateway.
func (s *ruleSite) fetchVia(tb testing.TB, name, path, wantCache string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	s.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/"+name+path, nil))
	if got := rec.Header().Get("X-Cache"); got != wantCache {
		tb.Fatalf("GET /fetch/%s%s: X-Cache %q, want %q (status %d %s)", name, path, got, wantCache, rec.Code, rec.Body)
	}
}

// raw renders target and returns its status and body.
func (s *ruleSite) raw(tb testing.TB, target string) (int, string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	s.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, target, nil))
	return rec.Code, rec.Body.String()
}

// populate sends requests that each rule of "api" stores (or refuses),
// and imports one entry no rule in force wrote.
func (s *ruleSite) populate(tb testing.TB) {
	tb.Helper()
	s.fetchVia(tb, "api", "/repos/a?api_key=k1", "MISS")
	s.fetchVia(tb, "api", "/repos/b", "MISS")
	s.fetchVia(tb, "api", "/repos/b", "HIT")
	s.fetchVia(tb, "api", "/users/x", "MISS")
	s.fetchVia(tb, "api", "/static/app.js", "MISS") // do_not_cache: not stored
	s.fetchVia(tb, "api", "/maxage", "MISS")
	s.fetchVia(tb, "api", "/other", "MISS")
	s.fetchVia(tb, "api", "/nostore", "MISS")
	s.fetchVia(tb, "rfc", "/maxage", "MISS")
	now := time.Now()
	old := &cache.Entry{Key: cache.MakeKey("imported"), BaseKey: cache.MakeKey("imported"), Upstream: "api", Method: "GET",
		URL: s.upstream + "/imported", Status: 200, Header: http.Header{}, Body: []byte("x"), Size: 1,
		Created: now, RequestTime: now, Expires: now.Add(time.Hour), Reason: "max_age 1h (an older wording)"}
	if err := s.db.Put(context.Background(), old); err != nil {
		tb.Fatal(err)
	}
}

func TestUpstreamsPageListsRulesInOrderWithCounts(t *testing.T) {
	s := newRuleSite(t)
	s.populate(t)
	doc := s.get(t, "/upstreams", http.StatusOK)
	ups := testid(doc, "upstream")
	if got := ups.Map(func(_ int, u *goquery.Selection) string { return u.AttrOr("data-upstream", "") }); strings.Join(got, ",") != "api,rfc" {
		t.Fatalf("upstreams %v, want api,rfc", got)
	}
	api := ups.First()
	if got := testid(api, "upstream-mode").Text(); got != "requests-cache" {
		t.Errorf("api mode %q", got)
	}
	if got := testid(api, "upstream-url").Text(); got != s.upstream {
		t.Errorf("api base URL %q, want %q", got, s.upstream)
	}
	if got := testid(api, "upstream-entries").Text(); got != "6 entries" {
		t.Errorf("api stored %q, want 6 entries", got)
	}
	type row struct{ rule, pattern, count, link string }
	var rows []row
	testid(api, "rule").Each(func(_ int, r *goquery.Selection) {
		c := testid(r, "rule-count")
		rows = append(rows, row{r.AttrOr("data-rule", ""), r.AttrOr("data-pattern", ""), c.Text(), c.AttrOr("href", "")})
	})
	want := []row{
		{"cache_control", "", "1", "/entries?" + url.Values{"upstream": {"api"}, "reason": {"the upstream's "}}.Encode()},
		{"request Cache-Control: max-age", "", "0", ""},
		{"request " + cache.ExpireAfterHeader, "", "0", ""},
		{"urls_expire_after", "/repos/*", "2", "/entries?" + url.Values{"upstream": {"api"}, "reason": {`urls_expire_after pattern "/repos/*" `}}.Encode()},
		{"urls_expire_after", "/users/*", "1", "/entries?" + url.Values{"upstream": {"api"}, "reason": {`urls_expire_after pattern "/users/*" `}}.Encode()},
		{"urls_expire_after", "/static/*", "0", ""},
		{"expire_after", "", "1", "/entries?" + url.Values{"upstream": {"api"}, "reason": {"expire_after "}}.Encode()},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("api rules\n %v\nwant\n %v", rows, want)
	}
	if got := testid(testid(api, "rule-other"), "rule-count").Text(); got != "1" {
		t.Errorf("entries no rule in force stored: %q, want 1", got)
	}
	// Each link lists exactly what the count says: the API takes the
	// same filter.
	for _, r := range want {
		if r.link == "" {
			continue
		}
		q, _ := url.ParseQuery(strings.TrimPrefix(r.link, "/entries?"))
		var list struct{ Total struct{ Entries int64 } }
		rec := httptest.NewRecorder()
		s.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/api/entries?"+q.Encode(), nil))
		if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("GET /api/entries?%s: %d %s", q.Encode(), rec.Code, rec.Body)
		}
		if fmt.Sprint(list.Total.Entries) != r.count {
			t.Errorf("%s %s: the API lists %d, the page counts %s", r.rule, r.pattern, list.Total.Entries, r.count)
		}
	}

	settings := map[string]string{}
	testid(api, "setting").Each(func(_ int, st *goquery.Selection) {
		settings[st.AttrOr("data-setting", "")] = testid(st, "setting-value").Text()
	})
	for name, want := range map[string]string{
		"ignored_parameters": "api_key", "match_headers": "Accept-Language", "allowable_codes": "200",
		"allowable_methods": "GET, HEAD", "stale_if_error": "10m0s", "stale_while_revalidate": "false",
		"cache_control": "true", "private_cache": "false", "client_overrides": "false",
		"share_credentialed_responses": "false", "revalidate_headers": "X-Api-Token", "timeout": "5s",
		"read_timeout": gateway.DefaultReadTimeout.String(), "total_timeout": gateway.DefaultTotalTimeout.String(),
	} {
		if settings[name] != want {
			t.Errorf("setting %s = %q, want %q", name, settings[name], want)
		}
	}

	rfc := ups.Eq(1)
	if got := testid(rfc, "upstream-backend").Text(); got != "scratch" {
		t.Errorf("rfc backend %q", got)
	}
	var rfcRules []string
	testid(rfc, "rule").Each(func(_ int, r *goquery.Selection) {
		rfcRules = append(rfcRules, r.AttrOr("data-rule", "")+"="+testid(r, "rule-count").Text())
	})
	if got, want := strings.Join(rfcRules, ","), "CDN-Cache-Control: s-maxage=0,CDN-Cache-Control: max-age=0,Cache-Control: s-maxage=0,Cache-Control: max-age=1,Expires=0,heuristic freshness=0,no freshness information=0"; got != want {
		t.Errorf("rfc rules %s, want %s", got, want)
	}
	if href := testid(rfc, "rule-count").Eq(3).AttrOr("href", ""); !strings.Contains(href, "backend=scratch") || !strings.Contains(href, "upstream=rfc") {
		t.Errorf("rfc max-age link %q does not name its backend and upstream", href)
	}
	if _, body := s.raw(t, "/upstreams"); strings.Contains(body, revalidateSecret) || strings.Contains(body, "k1") {
		t.Fatal("the Upstreams page shows a secret")
	}
}

func TestUpstreamsPageErrors(t *testing.T) {
	s := newRuleSite(t)
	doc := s.get(t, "/upstreams?sort=x", http.StatusBadRequest)
	if got := testid(doc, "error-title").Text(); !strings.Contains(got, "sort") {
		t.Errorf("unknown parameter: %q", got)
	}
	doc = s.get(t, "/upstreams?backend=nope", http.StatusNotFound)
	if got := testid(doc, "error-title").Text(); !strings.Contains(got, "nope") {
		t.Errorf("unknown backend: %q", got)
	}
	// With nothing stored every count is zero and nothing links.
	doc = s.get(t, "/upstreams", http.StatusOK)
	if n := testid(doc, "rule-count").Filter("a").Length(); n != 0 {
		t.Errorf("%d count links with nothing stored", n)
	}
	if n := testid(doc, "rule-other").Length(); n != 0 {
		t.Errorf("an 'other' row with nothing stored")
	}
}

// GET /api/upstreams shows the whole policy, revalidate_headers by name.
func TestAPIUpstreamsShowsTheWholePolicy(t *testing.T) {
	s := newRuleSite(t)
	code, body := s.raw(t, "/api/upstreams")
	if code != http.StatusOK {
		t.Fatalf("GET /api/upstreams: %d %s", code, body)
	}
	if strings.Contains(body, revalidateSecret) {
		t.Fatal("/api/upstreams shows a revalidate_headers value")
	}
	var out struct {
		Upstreams []struct {
			Name            string
			ReadTimeout     string   `json:"read_timeout"`
			MatchHeaders    []string `json:"match_headers"`
			ClientOverrides *bool    `json:"client_overrides"`
			PrivateCache    *bool    `json:"private_cache"`
			Share           *bool    `json:"share_credentialed_responses"`
			Revalidate      []string `json:"revalidate_headers"`
			URLs            []struct {
				Pattern     string
				ExpireAfter string `json:"expire_after"`
			} `json:"urls_expire_after"`
			Rules []struct {
				Rule, Pattern string
				Prefix        string `json:"reason_prefix"`
			} `json:"expiry_rules"`
		}
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	api := out.Upstreams[0]
	if api.Name != "api" || api.ReadTimeout == "" || fmt.Sprint(api.MatchHeaders) != "[Accept-Language]" ||
		api.ClientOverrides == nil || api.PrivateCache == nil || api.Share == nil || fmt.Sprint(api.Revalidate) != "[X-Api-Token]" {
		t.Fatalf("api: %+v", api)
	}
	if len(api.URLs) != 3 || api.URLs[2].Pattern != "/static/*" || api.URLs[2].ExpireAfter != "do_not_cache" {
		t.Fatalf("urls_expire_after: %+v", api.URLs)
	}
	if len(api.Rules) != 7 || api.Rules[3].Prefix != `urls_expire_after pattern "/repos/*" ` {
		t.Fatalf("expiry_rules: %+v", api.Rules)
	}
}

// A bulk delete by reason alone removes what that rule stored and
// nothing else: a reason is a selection, not an empty filter.
func TestBulkDeleteByReason(t *testing.T) {
	s := newRuleSite(t)
	s.populate(t)
	rec := httptest.NewRecorder()
	body := `{"filter":{"reason":"urls_expire_after pattern \"/repos/*\""}}`
	s.router.ServeHTTP(rec, loopbackRequest(http.MethodPost, "/api/delete", strings.NewReader(body), "Content-Type", "application/json"))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"deleted":2`) {
		t.Fatalf("POST /api/delete by reason: %d %s", rec.Code, rec.Body)
	}
	doc := s.get(t, "/upstreams", http.StatusOK)
	if got := testid(testid(doc, "upstream").First(), "upstream-entries").Text(); got != "4 entries" {
		t.Fatalf("after deleting the /repos/* entries: %q, want 4 entries", got)
	}
}

// The page says when its rules were loaded, and when the last reload
// failed, that the rules shown are the ones from before it.
func TestUpstreamsPageShowsReloads(t *testing.T) {
	s := newRuleSite(t)
	doc := s.get(t, "/upstreams", http.StatusOK)
	if got := testid(doc, "config-loaded").Text(); !strings.Contains(got, "at start") {
		t.Errorf("config line before any reload: %q", got)
	}
	if testid(doc, "config-reload-error").Length() != 0 {
		t.Error("a reload error shown before any reload")
	}

	if _, err := s.gw.Reload(gateway.Upstream{Name: "api", Backend: s.db}); err == nil {
		t.Fatal("an upstream without a URL reloaded")
	}
	doc = s.get(t, "/upstreams", http.StatusOK)
	if got := testid(doc, "config-reload-error").Text(); !strings.Contains(got, `upstream "api": url`) {
		t.Errorf("reload error shown: %q", got)
	}
	if n := testid(doc, "upstream").Length(); n != 2 {
		t.Errorf("%d upstreams after a failed reload, want the 2 from before", n)
	}

	base, _ := url.Parse(s.upstream)
	if _, err := s.gw.Reload(gateway.Upstream{Name: "api", URL: base, Policy: cache.DefaultPolicy(cache.Expiry(time.Minute)), Backend: s.db, BackendName: "default"}); err != nil {
		t.Fatal(err)
	}
	doc = s.get(t, "/upstreams", http.StatusOK)
	if got := testid(doc, "config-loaded").Text(); !strings.Contains(got, "by a reload (1 since start") {
		t.Errorf("config line after a reload: %q", got)
	}
	if testid(doc, "config-reload-error").Length() != 0 || testid(doc, "upstream").Length() != 1 {
		t.Error("after a reload that succeeded: an error still shown, or the old upstreams")
	}
}
