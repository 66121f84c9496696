package handlers_test

import (
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
	"github.com/cachegate/cachegate/static"
	"github.com/go-chi/chi/v5"
)

// pages is the admin side over real backends and a gateway with one real
// upstream, mounted the way web.Server mounts it.
type pages struct {
	router  chi.Router
	gw      *gateway.Gateway
	backend cache.Backend // the default backend
}

// pagesConfig shapes newPages.
type pagesConfig struct {
	backends map[string]cache.Backend // "default" is a SQLite file unless given
	dsns     map[string]string
	disabled string
	ignored  []string // the upstream's ignored_parameters
}

func newPages(tb testing.TB, cfg pagesConfig) *pages {
	tb.Helper()
	if cfg.backends == nil {
		cfg.backends = map[string]cache.Backend{}
	}
	if cfg.dsns == nil {
		cfg.dsns = map[string]string{}
	}
	if _, ok := cfg.backends["default"]; !ok {
		path := filepath.Join(tb.TempDir(), "cache.db")
		b, err := sqlite.Open("sqlite://" + path)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { b.Close() })
		cfg.backends["default"], cfg.dsns["default"] = b, "sqlite://"+path
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	tb.Cleanup(up.Close)
	u, err := url.Parse(up.URL)
	if err != nil {
		tb.Fatal(err)
	}
	pol := cache.DefaultPolicy(cache.Expiry(time.Hour))
	pol.IgnoredParameters = cfg.ignored
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "bin", URL: u, Policy: pol,
		Backend: cfg.backends["default"], BackendName: "default", Timeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	api := handlers.NewAPI(nil, gw, handlers.Options{Backends: cfg.backends, DSNs: cfg.dsns, Disabled: cfg.disabled})
	tb.Cleanup(api.Close)
	r := chi.NewRouter()
	api.Mount(r)
	api.MountPages(r)
	return &pages{router: r, gw: gw, backend: cfg.backends["default"]}
}

// fetch sends a request through the gateway and checks its X-Cache.
func (p *pages) fetch(tb testing.TB, path, wantCache string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	p.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/bin"+path, nil))
	if got := rec.Header().Get("X-Cache"); got != wantCache {
		tb.Fatalf("GET %s: X-Cache %q, want %q (status %d)", path, got, wantCache, rec.Code)
	}
}

// get renders a page and parses it.
func (p *pages) get(tb testing.TB, target string, wantStatus int) *goquery.Document {
	tb.Helper()
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, target, nil))
	if rec.Code != wantStatus {
		tb.Fatalf("GET %s: status %d, want %d: %.300s", target, rec.Code, wantStatus, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		tb.Fatalf("GET %s: Content-Type %q, want HTML", target, ct)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		tb.Fatalf("GET %s: Cache-Control %q, want no-store", target, cc)
	}
	doc, err := goquery.NewDocumentFromReader(rec.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// testid returns the elements marked data-testid=id below s.
func testid(s interface {
	Find(string) *goquery.Selection
}, id string) *goquery.Selection {
	return s.Find(`[data-testid="` + id + `"]`)
}

func text(s *goquery.Selection) string { return strings.Join(strings.Fields(s.Text()), " ") }

func TestOverviewPage(t *testing.T) {
	p := newPages(t, pagesConfig{backends: map[string]cache.Backend{"scratch": memory.New(1 << 20)},
		dsns: map[string]string{"scratch": "memory://"}})
	p.fetch(t, "/a", "MISS")
	p.fetch(t, "/a", "HIT")
	p.fetch(t, "/a", "HIT")
	p.fetch(t, "/b", "MISS")

	doc := p.get(t, "/", http.StatusOK)
	if got, want := text(testid(doc, "page-title")), "Overview"; got != want {
		t.Fatalf("title %q, want %q", got, want)
	}
	if got, want := text(testid(testid(doc, "total-requests"), "tile-value")), "4"; got != want {
		t.Errorf("total requests %q, want %q", got, want)
	}
	if got, want := text(testid(testid(doc, "total-hit-ratio"), "tile-value")), "50.0 %"; got != want {
		t.Errorf("total hit ratio %q, want %q", got, want)
	}
	row := testid(doc, "upstream-row").Filter(`[data-upstream="bin"]`)
	if row.Length() != 1 {
		t.Fatalf("%d rows for upstream bin", row.Length())
	}
	for id, want := range map[string]string{
		"upstream-requests": "4", "upstream-hits": "2", "upstream-misses": "2", "upstream-errors": "0",
		"upstream-hit-ratio": "50.0 %",
	} {
		if got := text(testid(row, id)); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	def := testid(doc, "backend-summary-row").Filter(`[data-backend="default"]`)
	if got, want := text(testid(def, "backend-entries")), "2"; got != want {
		t.Errorf("default backend entries %q, want %q", got, want)
	}
	if got := testid(doc, "backend-summary-row").Filter(`[data-backend="scratch"]`).Length(); got != 1 {
		t.Errorf("%d rows for backend scratch, want 1", got)
	}
}

func TestOverviewCountsAnAliasOnce(t *testing.T) {
	// One DSN configured under two names is one store: its entries must
	// not count twice in the totals.
	shared := memory.New(1 << 20)
	p := newPages(t, pagesConfig{backends: map[string]cache.Backend{"default": shared, "again": shared},
		dsns: map[string]string{"default": "memory://", "again": "memory://"}})
	p.fetch(t, "/a", "MISS")
	doc := p.get(t, "/", http.StatusOK)
	if got, want := testid(doc, "backend-summary-row").Length(), 1; got != want {
		t.Fatalf("%d backend rows, want %d", got, want)
	}
	if got, want := text(testid(testid(doc, "total-stored"), "tile-value")), text(testid(doc, "backend-bytes")); got != want {
		t.Fatalf("stored total %q, want the one store's %q", got, want)
	}
}

func TestBackendsPage(t *testing.T) {
	down := memory.New(1 << 20)
	down.Close()
	p := newPages(t, pagesConfig{
		backends: map[string]cache.Backend{"scratch": memory.New(1 << 20), "down": down},
		dsns:     map[string]string{"scratch": "memory://?max_size=1MiB", "down": "mongodb://app:REDACTED@db.internal/cache"},
	})
	p.fetch(t, "/a", "MISS")
	doc := p.get(t, "/backends", http.StatusOK)

	rows := testid(doc, "backend-row")
	var names []string
	rows.Each(func(_ int, s *goquery.Selection) { names = append(names, s.AttrOr("data-backend", "")) })
	if got, want := strings.Join(names, ","), "default,down,scratch"; got != want {
		t.Fatalf("rows %s, want %s", got, want)
	}
	tests := []struct {
		name, kind, entries, health string
		dsn                         func(string) bool
	}{
		{"default", "sqlite", "1", "healthy", func(s string) bool { return strings.HasPrefix(s, "sqlite://") }},
		{"down", "mongodb", "–", "down", func(s string) bool { return s == "mongodb://app:REDACTED@db.internal/cache" }},
		{"scratch", "memory", "0", "healthy", func(s string) bool { return s == "memory://?max_size=1MiB" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			row := rows.Filter(`[data-backend="` + tt.name + `"]`)
			if got := text(testid(row, "backend-kind")); got != tt.kind {
				t.Errorf("kind %q, want %q", got, tt.kind)
			}
			if got := text(testid(row, "backend-dsn")); !tt.dsn(got) {
				t.Errorf("DSN %q", got)
			}
			if got := text(testid(row, "backend-entries")); got != tt.entries {
				t.Errorf("entries %q, want %q", got, tt.entries)
			}
			health := testid(row, "backend-health")
			if got := text(health.Find(".badge")); got != tt.health {
				t.Errorf("health %q, want %q", got, tt.health)
			}
			if tt.health == "down" && text(testid(row, "backend-error")) == "" {
				t.Errorf("a backend that is down says nothing about why")
			}
		})
	}
	// The picker offers the unhealthy backend too, saying it is unavailable.
	if got := text(testid(doc, "backend-option-down")); !strings.Contains(got, "unavailable") {
		t.Errorf("picker option for the down backend: %q", got)
	}
}

func TestLayout(t *testing.T) {
	p := newPages(t, pagesConfig{backends: map[string]cache.Backend{"scratch": memory.New(1 << 20)},
		dsns: map[string]string{"scratch": "memory://"}})
	p.fetch(t, "/a", "MISS")
	tests := []struct {
		name, target, active, selected string
		navQuery                       string // the query every nav link carries
	}{
		{"default backend", "/", "nav-overview", "default", ""},
		{"picked backend", "/backends?backend=scratch", "nav-backends", "scratch", "backend=scratch"},
		{"default named", "/?backend=default", "nav-overview", "default", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := p.get(t, tt.target, http.StatusOK)
			if got := doc.Find(`meta[name="csrf-token"]`).AttrOr("content", ""); got == "" {
				t.Error("no csrf-token meta")
			}
			if testid(doc, "toasts").Length() != 1 {
				t.Error("no toast area")
			}
			current := testid(doc, "nav").Find(`a[aria-current="page"]`)
			if got := current.AttrOr("data-testid", ""); got != tt.active {
				t.Errorf("current nav item %q, want %q", got, tt.active)
			}
			testid(doc, "nav").Find("a").Each(func(_ int, a *goquery.Selection) {
				u, err := url.Parse(a.AttrOr("href", ""))
				if err != nil || u.RawQuery != tt.navQuery {
					t.Errorf("nav link %q, want query %q", a.AttrOr("href", ""), tt.navQuery)
				}
			})
			sel := testid(doc, "backend-select").Find("option[selected]")
			if got := sel.AttrOr("value", ""); got != tt.selected {
				t.Errorf("picker shows %q, want %q", got, tt.selected)
			}
			if got := text(testid(doc, "backend-option-default")); !strings.Contains(got, "sqlite") || !strings.Contains(got, "1 entry") {
				t.Errorf("picker option for default: %q, want kind and entry count", got)
			}
			form := testid(doc, "backend-picker")
			if got, want := form.AttrOr("action", ""), strings.SplitN(tt.target, "?", 2)[0]; got != want {
				t.Errorf("picker submits to %q, want the current page %q", got, want)
			}
			if got := testid(doc, "auth-local").Length(); got != 1 {
				t.Errorf("loopback without a token shows no local-access state")
			}
		})
	}
}

func TestPagesLoadScriptsOnlyFromStatic(t *testing.T) {
	// The CSP allows scripts from 'self' alone: an inline script or an
	// on*= handler would be refused by the browser and break the page.
	p := newPages(t, pagesConfig{})
	for _, target := range []string{"/", "/backends", "/nope", "/?backend=nope", "/signin"} {
		rec := httptest.NewRecorder()
		p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, target, nil))
		doc, err := goquery.NewDocumentFromReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		doc.Find("script").Each(func(_ int, s *goquery.Selection) {
			src, ok := s.Attr("src")
			if !ok || !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
				t.Errorf("%s: inline or foreign script %q", target, src)
			}
			sub := httptest.NewRecorder()
			p.router.ServeHTTP(sub, loopbackRequest(http.MethodGet, src, nil))
			if sub.Code != http.StatusOK {
				t.Errorf("%s: script %s answers %d", target, src, sub.Code)
			}
		})
		doc.Find("*").Each(func(_ int, s *goquery.Selection) {
			for _, a := range s.Nodes[0].Attr {
				if strings.HasPrefix(strings.ToLower(a.Key), "on") {
					t.Errorf("%s: <%s %s=...> is an inline handler", target, goquery.NodeName(s), a.Key)
				}
			}
		})
	}
}

func TestPageErrors(t *testing.T) {
	p := newPages(t, pagesConfig{backends: map[string]cache.Backend{"scratch": memory.New(1 << 20)},
		dsns: map[string]string{"scratch": "memory://"}})
	tests := []struct {
		name, target string
		status       int
		title, hint  string // substrings
	}{
		{"unknown page", "/nope", 404, "There is no page at /nope", "navigation"},
		{"unknown backend", "/?backend=nope", 404, `No backend named "nope"`, "default, scratch"},
		{"unknown parameter", "/backends?sort=x", 400, "sort", "Check the address"},
		{"repeated parameter", "/?backend=default&backend=scratch", 400, "backend", "Check the address"},
	}
	t.Run("method not allowed", func(t *testing.T) {
		rec := httptest.NewRecorder()
		csrf, _ := p.get(t, "/", http.StatusOK).Find(`meta[name="csrf-token"]`).Attr("content")
		p.router.ServeHTTP(rec, loopbackRequest(http.MethodPost, "/backends", nil, "X-CSRF-Token", csrf))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("POST /backends: %d, want 405", rec.Code)
		}
		doc, err := goquery.NewDocumentFromReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got := text(testid(doc, "error-title")); !strings.Contains(got, "does not take POST") {
			t.Fatalf("title %q", got)
		}
	})
	t.Run("api stays JSON", func(t *testing.T) {
		rec := httptest.NewRecorder()
		p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/api/nope", nil))
		if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNotFound || !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("GET /api/nope: %d %s, want a JSON 404", rec.Code, ct)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := p.get(t, tt.target, tt.status)
			if got := text(testid(doc, "error-status")); got != fmt.Sprint(tt.status) {
				t.Errorf("status shown %q, want %d", got, tt.status)
			}
			if got := text(testid(doc, "error-title")); !strings.Contains(got, tt.title) {
				t.Errorf("title %q, want it to contain %q", got, tt.title)
			}
			if got := text(testid(doc, "error-hint")); !strings.Contains(got, tt.hint) {
				t.Errorf("hint %q, want it to contain %q", got, tt.hint)
			}
			if testid(doc, "nav").Length() != 1 {
				t.Error("the error page has no navigation to go on from")
			}
		})
	}
}

func TestPagesOffWhenTheAdminSideIsOff(t *testing.T) {
	p := newPages(t, pagesConfig{disabled: "the admin API is off: set a token"})
	for _, target := range []string{"/", "/backends", "/signin", "/nope"} {
		doc := p.get(t, target, http.StatusForbidden)
		if got := text(testid(doc, "error-hint")); got != "the admin API is off: set a token" {
			t.Errorf("%s: hint %q", target, got)
		}
		if testid(doc, "backend-picker").Length() != 0 {
			t.Errorf("%s: the refusal shows the backends", target)
		}
	}
	// The assets hold no data and stay reachable.
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, static.URL("css/app.css"), nil))
	if rec.Code != http.StatusOK {
		t.Errorf("the stylesheet answers %d", rec.Code)
	}
}

func TestSignInPageWithoutATokenGoesOn(t *testing.T) {
	// On loopback without a token there is nothing to sign in to: the page
	// sends the user on to next, but only to a path on this server.
	p := newPages(t, pagesConfig{})
	tests := []struct{ name, next, want string }{
		{"local path", "/backends?backend=default", "/backends?backend=default"},
		{"none", "", "/"},
		{"other site", "https://evil.example/", "/"},
		{"scheme-relative", "//evil.example/x", "/"},
		{"backslash", "/\\evil.example", "/"},
		{"relative", "backends", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			p.router.ServeHTTP(rec, loopbackRequest(http.MethodGet, "/signin?next="+url.QueryEscape(tt.next), nil))
			if rec.Code != http.StatusSeeOther {
				t.Fatalf("status %d, want 303", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != tt.want {
				t.Fatalf("Location %q, want %q", got, tt.want)
			}
		})
	}
}

// BenchmarkPages measures the server time of each page, rendering
// included, over a SQLite default backend and a memory one.
func BenchmarkPages(b *testing.B) {
	p := newPages(b, pagesConfig{backends: map[string]cache.Backend{"scratch": memory.New(1 << 20)},
		dsns: map[string]string{"scratch": "memory://"}})
	p.fetch(b, "/a", "MISS")
	p.fetch(b, "/a", "HIT")
	for _, page := range []struct{ name, target string }{{"overview", "/"}, {"backends", "/backends"}} {
		target := page.target
		b.Run(page.name, func(b *testing.B) {
			req := loopbackRequest(http.MethodGet, target, nil)
			for b.Loop() {
				rec := httptest.NewRecorder()
				p.router.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
