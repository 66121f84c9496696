package handlers_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// answer is what the test upstream sends for one path.
type answer struct {
	status int
	header http.Header
	body   string
}

// origin is an upstream whose answers a test changes as it goes. A
// request carrying the answer's ETag in If-None-Match gets a 304.
type origin struct {
	mu      sync.Mutex // protects answers
	answers map[string]answer
}

func (o *origin) set(path string, a answer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.answers[path] = a
}

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	a, ok := o.answers[r.URL.Path]
	o.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	for k, v := range a.header {
		w.Header()[k] = v
	}
	if etag := a.header.Get("ETag"); etag != "" && r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if a.status == 0 {
		a.status = http.StatusOK
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, a.body)
}

// entryPages is the admin side over a SQLite file with one upstream "up"
// served by an origin, and a backend "down" that fails every call.
type entryPages struct {
	router  chi.Router
	gw      *gateway.Gateway
	db      cache.Backend
	origin  *origin
	baseURL string
}

func newEntryPages(tb testing.TB) *entryPages {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "cache.db")
	db, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	down := memory.New(1 << 20)
	down.Close()
	o := &origin{answers: map[string]answer{}}
	srv := httptest.NewServer(o)
	tb.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		tb.Fatal(err)
	}
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.IgnoredParameters = []string{"api_key"}
	p.MatchHeaders = []string{"Accept-Language"}
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "up", URL: u, Policy: p, Backend: db, BackendName: "default", Timeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	api := handlers.NewAPI(nil, gw, handlers.Options{
		Backends: map[string]cache.Backend{"default": db, "down": down},
		DSNs:     map[string]string{"default": "sqlite://" + path, "down": "memory://"},
	})
	tb.Cleanup(api.Close)
	r := chi.NewRouter()
	api.Mount(r)
	api.MountPages(r)
	return &entryPages{router: r, gw: gw, db: db, origin: o, baseURL: srv.URL}
}

// fetch sends a GET through the gateway and checks its X-Cache.
func (p *entryPages) fetch(tb testing.TB, target, wantCache string, header ...string) {
	tb.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/fetch/up"+target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	p.gw.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Cache"); got != wantCache {
		tb.Fatalf("GET %s: X-Cache %q, want %q (status %d)", target, got, wantCache, rec.Code)
	}
}

// key returns the key of the one stored entry whose URL holds substr.
func (p *entryPages) key(tb testing.TB, substr string) string {
	tb.Helper()
	page, err := p.db.List(context.Background(), cache.Query{Filter: cache.Filter{URL: substr}})
	if err != nil {
		tb.Fatal(err)
	}
	if len(page.Entries) != 1 {
		tb.Fatalf("%d entries match %q, want 1", len(page.Entries), substr)
	}
	return page.Entries[0].Key
}

// do sends a page request from this machine and returns the answer.
func (p *entryPages) do(tb testing.TB, method, target string, form url.Values) *httptest.ResponseRecorder {
	tb.Helper()
	var body io.Reader
	var header []string
	if form != nil {
		body = strings.NewReader(form.Encode())
		header = []string{"Content-Type", "application/x-www-form-urlencoded"}
	}
	rec := httptest.NewRecorder()
	p.router.ServeHTTP(rec, loopbackRequest(method, target, body, header...))
	return rec
}

// page renders target and parses it, failing on another status.
func (p *entryPages) page(tb testing.TB, method, target string, form url.Values, wantStatus int) (*goquery.Document, string) {
	tb.Helper()
	rec := p.do(tb, method, target, form)
	if rec.Code != wantStatus {
		tb.Fatalf("%s %s: status %d, want %d: %.400s", method, target, rec.Code, wantStatus, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		tb.Fatalf("%s %s: Content-Type %q, want HTML", method, target, ct)
	}
	raw := rec.Body.String()
	doc, err := goquery.NewDocumentFromReader(strings.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	return doc, raw
}

// csrf is the page's CSRF token.
func (p *entryPages) csrf(tb testing.TB) url.Values {
	tb.Helper()
	doc, _ := p.page(tb, http.MethodGet, "/", nil, http.StatusOK)
	token := doc.Find(`meta[name="csrf-token"]`).AttrOr("content", "")
	if token == "" {
		tb.Fatal("no CSRF token on the page")
	}
	return url.Values{"csrf_token": {token}}
}

// gzipped is s gzip-compressed.
func gzipped(s string) string {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return buf.String()
}

func jsonAnswer(body string) answer {
	return answer{header: http.Header{"Content-Type": {"application/json"}}, body: body}
}

func TestEntryPageShowsTheEntryRedacted(t *testing.T) {
	p := newEntryPages(t)
	p.origin.set("/repos/go.json", jsonAnswer(`{"name":"go","stars":123,"tags":[true,null,"x<y"],"say":"a \"quoted\": word"}`))
	p.fetch(t, "/repos/go.json?page=2&api_key=SECRETKEY1", "MISS", "Accept-Language", "de")
	p.fetch(t, "/repos/go.json?page=2&api_key=SECRETKEY1", "HIT", "Accept-Language", "de")
	key := p.key(t, "go.json")

	doc, raw := p.page(t, http.MethodGet, "/entries/"+key, nil, http.StatusOK)
	if strings.Contains(raw, "SECRETKEY1") {
		t.Fatal("the ignored parameter's value appears on the page")
	}
	if got := text(testid(doc, "entry-url")); !strings.HasSuffix(got, "/repos/go.json?api_key=REDACTED&page=2") && !strings.HasSuffix(got, "/repos/go.json?page=2&api_key=REDACTED") {
		t.Errorf("URL %q, want the stored, redacted one", got)
	}
	for id, want := range map[string]string{
		"entry-method": "GET", "entry-upstream": "up", "entry-backend": "default", "entry-key": key,
		"entry-status": "200", "entry-content-type": "application/json",
	} {
		if got := text(testid(doc, id)); got != want {
			t.Errorf("%s = %q, want %q", id, got, want)
		}
	}
	if got := text(testid(doc, "entry-expires")); got != "in 59 min" && got != "in 1 h" {
		t.Errorf("expires %q, want in about an hour", got)
	}
	if _, ok := testid(doc, "entry-expires").Attr("data-countdown"); !ok {
		t.Error("the expiry does not count down")
	}
	row := testid(testid(doc, "request-headers"), "header-row").Filter(`[data-header="Accept-Language"]`)
	if got := text(testid(row, "header-value")); got != "de" {
		t.Errorf("Accept-Language = %q, want de", got)
	}
	if !strings.Contains(text(row), "match") {
		t.Errorf("Accept-Language row %q does not say it is a match header", text(row))
	}

	// JSON: pretty-printed, one coloured span per token, escaped.
	pre := testid(doc, "body-json")
	if pre.Length() != 1 {
		t.Fatalf("no JSON viewer")
	}
	if got := pre.Text(); !strings.Contains(got, "{\n  \"name\": \"go\",\n  \"stars\": 123,") {
		t.Errorf("JSON not pretty-printed: %q", got)
	}
	if got := text(pre.Find(".j-k").First()); got != `"name"` {
		t.Errorf("first key token %q", got)
	}
	if got := text(pre.Find(".j-n")); got != "123" {
		t.Errorf("number token %q", got)
	}
	if got := pre.Find(".j-b").Length() + pre.Find(".j-z").Length(); got != 2 {
		t.Errorf("%d literal tokens, want 2", got)
	}
	var strs []string
	pre.Find(".j-s").Each(func(_ int, s *goquery.Selection) { strs = append(strs, s.Text()) })
	if got, want := strings.Join(strs, "|"), `"go"|"x<y"|"a \"quoted\": word"`; got != want {
		t.Errorf("string tokens %s, want %s", got, want)
	}
	if !strings.Contains(raw, `x&lt;y`) {
		t.Error("a string in the JSON is not escaped")
	}

	// The key and the rule behind the expiry.
	if got := text(testid(doc, "entry-reason")); got == "" || got == "not recorded" {
		t.Errorf("no reason for the expiry: %q", got)
	}
	if got := testid(doc, "chain-won").Length(); got != 1 {
		t.Errorf("%d rules marked as deciding the expiry, want 1", got)
	}
	if got := text(testid(doc, "explain-key")); got != key {
		t.Errorf("explained key %q, want the entry's %q", got, key)
	}
	parts := map[string]string{}
	testid(doc, "key-part").Each(func(_ int, s *goquery.Selection) {
		parts[text(testid(s, "key-part-name"))] = text(testid(s, "key-part-value"))
	})
	if parts["upstream"] != "up" || parts["method"] != "GET" || parts["header Accept-Language"] != "de" {
		t.Errorf("key parts %v", parts)
	}
	if got := text(testid(doc, "cached-answer")); !strings.HasPrefix(got, "HIT") {
		t.Errorf("a request now: %q, want HIT", got)
	}

	// Copy as curl through the gateway, with the match header.
	curl := testid(doc, "curl").Text()
	for _, want := range []string{"curl 'http://127.0.0.1:8080/fetch/up/repos/go.json?", "api_key=REDACTED", "-H 'Accept-Language: de'"} {
		if !strings.Contains(curl, want) {
			t.Errorf("curl %q lacks %q", curl, want)
		}
	}
	if strings.Contains(curl, " -X ") {
		t.Errorf("curl of a GET names the method: %q", curl)
	}
	if got := testid(doc, "copy-curl").AttrOr("data-copy", ""); got != "#curl-command" || doc.Find(got).Length() != 1 {
		t.Errorf("copy button points at %q", got)
	}
}

func TestEntryPageMarksVaryHeaders(t *testing.T) {
	p := newEntryPages(t)
	p.origin.set("/tenant", answer{header: http.Header{"Content-Type": {"text/plain"}, "Vary": {"X-Tenant"}}, body: "for a"})
	p.fetch(t, "/tenant", "MISS", "X-Tenant", "a")
	doc, _ := p.page(t, http.MethodGet, "/entries/"+p.key(t, "/tenant"), nil, http.StatusOK)
	row := testid(testid(doc, "request-headers"), "header-row").Filter(`[data-header="X-Tenant"]`)
	if got := text(testid(row, "header-value")) + " " + text(row.Find(".badge")); got != "a vary" {
		t.Errorf("X-Tenant: %q, want its value marked vary", got)
	}
	if !strings.Contains(testid(doc, "curl").Text(), "-H 'X-Tenant: a'") {
		t.Errorf("curl %q lacks the Vary header", testid(doc, "curl").Text())
	}
}

func TestEntryPageRedactsImportedSecrets(t *testing.T) {
	// An entry imported from elsewhere may hold credential headers and a
	// request body: the page shows none of their values.
	p := newEntryPages(t)
	now := time.Now()
	e := &cache.Entry{
		Key: "imported-1", BaseKey: "imported-1", Upstream: "up", Method: http.MethodPost,
		URL: p.baseURL + "/search?api_key=REDACTED", Status: 200,
		RequestHeader: http.Header{"Authorization": {"Bearer SECRETTOKEN2"}, "Cookie": {"sid=SECRETCOOKIE3"},
			"Content-Type": {"application/json"}},
		RequestBody: []byte(`{"q":"it's"}`),
		Header: http.Header{"Content-Type": {"text/plain"}, "Set-Cookie": {"sid=SECRETCOOKIE4"},
			"X-Trace": {"abc"}},
		Body: []byte("found"), Size: 5, ContentType: "text/plain", Created: now, RequestTime: now,
		Expires: now.Add(time.Hour), Reason: "imported",
	}
	if err := p.db.Put(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	doc, raw := p.page(t, http.MethodGet, "/entries/imported-1", nil, http.StatusOK)
	for _, secret := range []string{"SECRETTOKEN2", "SECRETCOOKIE3", "SECRETCOOKIE4"} {
		if strings.Contains(raw, secret) {
			t.Errorf("%s appears on the page", secret)
		}
	}
	auth := testid(testid(doc, "request-headers"), "header-row").Filter(`[data-header="Authorization"]`)
	if got := text(testid(auth, "header-value")); got != gateway.Redacted {
		t.Errorf("Authorization = %q, want %s", got, gateway.Redacted)
	}
	cookie := testid(testid(doc, "response-headers"), "header-row").Filter(`[data-header="Set-Cookie"]`)
	if got := text(testid(cookie, "header-value")); got != gateway.Redacted {
		t.Errorf("Set-Cookie = %q, want %s", got, gateway.Redacted)
	}
	if got := text(testid(doc, "request-body")); got != `{"q":"it's"}` {
		t.Errorf("request body %q", got)
	}
	curl := testid(doc, "curl").Text()
	for _, want := range []string{"curl -X POST 'http://127.0.0.1:8080/fetch/up/search?api_key=REDACTED' \\\n",
		"\n  -H 'Authorization: REDACTED'", `--data-binary '{"q":"it'\''s"}'`} {
		if !strings.Contains(curl, want) {
			t.Errorf("curl %q lacks %q", curl, want)
		}
	}
}

func TestEntryBodyViewers(t *testing.T) {
	p := newEntryPages(t)
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
	big := `{"items":[` + strings.Repeat(`"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",`, 5000) + `"end"]}`
	tests := []struct {
		name, path, ct, body string
		check                func(t *testing.T, doc *goquery.Document, raw string)
	}{
		{"html is text", "/page.html", "text/html; charset=utf-8", `<h1 id="x">hi</h1><script>alert("owned")</script>`,
			func(t *testing.T, doc *goquery.Document, raw string) {
				if got := testid(doc, "body-text").Text(); got != `<h1 id="x">hi</h1><script>alert("owned")</script>` {
					t.Errorf("HTML shown as %q, want its source", got)
				}
				if doc.Find("#x").Length() != 0 || strings.Contains(raw, `<script>alert`) {
					t.Error("the HTML body is inlined into the page")
				}
				if doc.Find("iframe").Length() != 0 {
					t.Error("an iframe without need")
				}
				if got := text(testid(doc, "body-note")); !strings.Contains(got, "never rendered") {
					t.Errorf("note %q", got)
				}
			}},
		{"svg is text", "/logo.svg", "image/svg+xml", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><circle r="4"/></svg>`,
			func(t *testing.T, doc *goquery.Document, raw string) {
				if testid(doc, "body-image").Length() != 0 || doc.Find("main svg circle").Length() != 0 {
					t.Error("the SVG is shown as an image or inlined")
				}
				if !strings.Contains(testid(doc, "body-text").Text(), `onload="alert(1)"`) {
					t.Error("the SVG's source is not shown")
				}
			}},
		{"png is an image", "/pixel.png", "image/png", png,
			func(t *testing.T, doc *goquery.Document, raw string) {
				src := testid(doc, "body-image").AttrOr("src", "")
				if !strings.HasPrefix(src, "/entries/") || !strings.HasSuffix(src, "/image") {
					t.Fatalf("img src %q, want the page's image route", src)
				}
				rec := p.do(t, http.MethodGet, src, nil)
				if rec.Code != 200 || rec.Header().Get("Content-Type") != "image/png" || rec.Body.String() != png {
					t.Errorf("image route: %d %s, %d bytes", rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
				}
				if got := rec.Header().Get("Content-Security-Policy"); !strings.HasPrefix(got, "sandbox") {
					t.Errorf("image route CSP %q, want sandbox", got)
				}
				if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("image route X-Content-Type-Options %q", got)
				}
			}},
		{"binary is a hex dump", "/blob", "application/octet-stream", strings.Repeat("\x00\x01\x02binary\xff", 200),
			func(t *testing.T, doc *goquery.Document, raw string) {
				dump := testid(doc, "body-hex").Text()
				if !strings.HasPrefix(dump, "00000000  00 01 02 62 69 6e 61 72  79 ff 00 01 02 62 69 6e  |...binary....bin|") {
					t.Errorf("hex dump starts %.80q", dump)
				}
				if lines := strings.Count(dump, "\n"); lines != 64 {
					t.Errorf("%d lines of hex, want 64 (the first KiB)", lines)
				}
				if got := text(testid(doc, "body-note")); !strings.Contains(got, "first 1.0 KiB of 2.0 KiB") {
					t.Errorf("note %q", got)
				}
			}},
		{"text is text", "/readme.txt", "text/plain", "line one\nline <two>",
			func(t *testing.T, doc *goquery.Document, raw string) {
				if got := testid(doc, "body-text").Text(); got != "line one\nline <two>" {
					t.Errorf("text %q", got)
				}
			}},
		{"large json is capped", "/big.json", "application/json", big,
			func(t *testing.T, doc *goquery.Document, raw string) {
				// Pretty-printed, then cut at a line's end within 256 KiB.
				shown := testid(doc, "body-json").Text()
				if len(shown) > 256<<10 || len(shown) < 255<<10 || !strings.HasSuffix(shown, `",`) {
					t.Errorf("%d bytes shown, ending %q; want up to 256 KiB, whole lines", len(shown), shown[max(0, len(shown)-20):])
				}
				if !strings.HasPrefix(shown, "{\n  \"items\": [\n    \"aaa") {
					t.Errorf("not pretty-printed: %.40q", shown)
				}
				if got := text(testid(doc, "body-note")); !strings.Contains(got, "first 256 KiB") {
					t.Errorf("note %q", got)
				}
			}},
		{"gzip is shown decoded", "/packed.json", "application/json", gzipped(`{"packed":true}`),
			func(t *testing.T, doc *goquery.Document, raw string) {
				if got := testid(doc, "body-json").Text(); got != "{\n  \"packed\": true\n}" {
					t.Errorf("decoded body %q", got)
				}
				if got := text(testid(doc, "body-note")); !strings.Contains(got, "gzip-compressed; shown decompressed") {
					t.Errorf("note %q", got)
				}
			}},
		{"empty", "/empty", "text/plain", "",
			func(t *testing.T, doc *goquery.Document, raw string) {
				if testid(doc, "body-empty").Length() != 1 {
					t.Error("an empty body does not say so")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {tt.ct}}
			if strings.HasPrefix(tt.body, "\x1f\x8b") {
				h.Set("Content-Encoding", "gzip")
			}
			p.origin.set(tt.path, answer{header: h, body: tt.body})
			p.fetch(t, tt.path, "MISS")
			key := p.key(t, tt.path)
			doc, raw := p.page(t, http.MethodGet, "/entries/"+key, nil, http.StatusOK)
			tt.check(t, doc, raw)
			// Every body downloads whole, as an attachment, sandboxed.
			rec := p.do(t, http.MethodGet, testid(doc, "download").AttrOr("href", ""), nil)
			if rec.Code != 200 || rec.Body.String() != tt.body {
				t.Errorf("download: %d, %d bytes, want %d", rec.Code, rec.Body.Len(), len(tt.body))
			}
			if got := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(got, "attachment; filename=") {
				t.Errorf("download Content-Disposition %q", got)
			}
			if got := rec.Header().Get("Content-Security-Policy"); !strings.HasPrefix(got, "sandbox") {
				t.Errorf("download CSP %q", got)
			}
			// The image route serves raster images only.
			if tt.ct != "image/png" {
				if rec := p.do(t, http.MethodGet, "/entries/"+key+"/image", nil); rec.Code != http.StatusNotFound {
					t.Errorf("image route for %s: %d, want 404", tt.ct, rec.Code)
				}
			}
		})
	}
}

func TestEntryDownloadName(t *testing.T) {
	p := newEntryPages(t)
	p.origin.set("/v1/users", jsonAnswer(`[]`))
	p.fetch(t, "/v1/users?x=1", "MISS")
	rec := p.do(t, http.MethodGet, "/entries/"+p.key(t, "/v1/users")+"/body", nil)
	if got, want := rec.Header().Get("Content-Disposition"), `attachment; filename=users.json`; got != want {
		t.Errorf("Content-Disposition %q, want %q", got, want)
	}
}

func TestEntryRevalidateOutcomes(t *testing.T) {
	p := newEntryPages(t)
	form := p.csrf(t)
	tests := []struct {
		name    string
		path    string
		first   answer
		then    answer // the upstream's answer at revalidation
		outcome string
		check   func(t *testing.T, doc *goquery.Document)
	}{
		{"not modified", "/etag", answer{header: http.Header{"Content-Type": {"text/plain"}, "Etag": {`"v1"`}}, body: "same"},
			answer{header: http.Header{"Content-Type": {"text/plain"}, "Etag": {`"v1"`}}, body: "same"}, "not_modified",
			func(t *testing.T, doc *goquery.Document) {
				if got := text(testid(doc, "revalidation-title")); !strings.HasPrefix(got, "Not modified (304)") {
					t.Errorf("title %q", got)
				}
				if testid(doc, "diff").Length() != 0 {
					t.Error("a diff for an unchanged entry")
				}
				if got := text(testid(doc, "body-text")); got != "same" {
					t.Errorf("the page after it shows body %q", got)
				}
			}},
		{"updated", "/data.json", jsonAnswer(`{"a":1,"b":"old","c":[1,2]}`),
			answer{header: http.Header{"Content-Type": {"application/json"}, "X-Version": {"2"}}, body: `{"a":1,"b":"new","c":[1,2],"d":true}`}, "updated",
			func(t *testing.T, doc *goquery.Document) {
				d := testid(doc, "diff")
				if got := text(testid(d, "diff-status")); got != "200 → 200 unchanged" {
					t.Errorf("status diff %q", got)
				}
				h := testid(d, "diff-header").Filter(`[data-header="X-Version"]`)
				if got := text(testid(h, "diff-header-before")) + "|" + text(testid(h, "diff-header-after")); got != "|2" {
					t.Errorf("X-Version change %q, want |2", got)
				}
				left := testid(d, "diff-left-del")
				right := testid(d, "diff-right-add")
				if left.Length() != 2 || text(left.First()) != `"b": "old",` || text(left.Last()) != "]" {
					t.Errorf("removed lines %q", text(left))
				}
				if right.Length() != 3 || text(right.First()) != `"b": "new",` {
					t.Errorf("added lines: %d, first %q", right.Length(), text(right.First()))
				}
				// The cached line and the fresh one sit side by side.
				if got := text(left.First().Parent().Find(`[data-testid="diff-right-add"]`)); got != `"b": "new",` {
					t.Error("the removed line has no added line beside it")
				}
				if got := text(testid(d, "diff-body-summary")); !strings.HasPrefix(got, "Changed: 27 B → 36 B") {
					t.Errorf("body summary %q", got)
				}
				if !strings.Contains(testid(doc, "body-json").Text(), `"d": true`) {
					t.Error("the page after it does not show the new body")
				}
			}},
		{"gone", "/removed", answer{header: http.Header{"Content-Type": {"text/plain"}}, body: "here"},
			answer{status: http.StatusGone}, "gone",
			func(t *testing.T, doc *goquery.Document) {
				if got := text(testid(doc, "revalidation-title")); !strings.Contains(got, "the entry was removed") {
					t.Errorf("title %q", got)
				}
				if testid(doc, "back-to-entries").Length() != 1 || testid(doc, "revalidate").Length() != 0 {
					t.Error("a removed entry's page offers actions or no way back")
				}
			}},
		{"error", "/flaky", answer{header: http.Header{"Content-Type": {"text/plain"}}, body: "kept"},
			answer{status: http.StatusServiceUnavailable, body: "down"}, "error",
			func(t *testing.T, doc *goquery.Document) {
				if got := text(testid(doc, "revalidation-error")); !strings.Contains(got, "503") || !strings.Contains(got, "kept") {
					t.Errorf("error %q", got)
				}
				if got := text(testid(doc, "body-text")); got != "kept" {
					t.Errorf("the entry changed: body %q", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.origin.set(tt.path, tt.first)
			p.fetch(t, tt.path, "MISS")
			key := p.key(t, tt.path)
			p.origin.set(tt.path, tt.then)
			doc, _ := p.page(t, http.MethodPost, "/entries/"+key+"/revalidate", form, http.StatusOK)
			if got := testid(doc, "revalidation").AttrOr("data-outcome", ""); got != tt.outcome {
				t.Fatalf("outcome %q, want %q: %s", got, tt.outcome, text(testid(doc, "revalidation")))
			}
			if testid(doc, "entry-detail").AttrOr("id", "") != "entry-detail" {
				t.Error("no #entry-detail for htmx to swap")
			}
			if got := testid(doc, "backend-picker").AttrOr("action", ""); got != "/entries/"+key {
				t.Errorf("the backend picker goes to %q, want the entry's page", got)
			}
			tt.check(t, doc)
		})
	}

	t.Run("skipped", func(t *testing.T) {
		// A stored request whose credential was never stored cannot be
		// sent again as it was.
		now := time.Now()
		e := &cache.Entry{Key: "cred-1", BaseKey: "cred-1", Upstream: "up", Method: http.MethodGet, URL: p.baseURL + "/private",
			RequestHeader: http.Header{"Authorization": {gateway.Redacted}}, Status: 200,
			Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("mine"), Size: 4, ContentType: "text/plain",
			Created: now, Expires: now.Add(time.Hour)}
		if err := p.db.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		doc, _ := p.page(t, http.MethodPost, "/entries/cred-1/revalidate", form, http.StatusOK)
		if got := testid(doc, "revalidation").AttrOr("data-outcome", ""); got != "skipped" {
			t.Fatalf("outcome %q, want skipped: %s", got, text(testid(doc, "revalidation")))
		}
		if text(testid(doc, "revalidation-reason")) == "" {
			t.Error("a skip without its reason")
		}
	})
	t.Run("unknown upstream", func(t *testing.T) {
		now := time.Now()
		e := &cache.Entry{Key: "elsewhere-1", BaseKey: "elsewhere-1", Upstream: "gone-upstream", Method: http.MethodGet,
			URL: "https://example.com/x", Status: 200, Header: http.Header{}, Body: []byte("x"), Size: 1, Created: now}
		if err := p.db.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		doc, _ := p.page(t, http.MethodPost, "/entries/elsewhere-1/revalidate", form, http.StatusOK)
		if got := text(testid(doc, "revalidation-error")); !strings.Contains(got, "gone-upstream") || !strings.Contains(got, "Nothing was sent") {
			t.Errorf("error %q", got)
		}
		if got := testid(doc, "curl").Text(); !strings.Contains(got, "'https://example.com/x'") {
			t.Errorf("curl for an unknown upstream %q, want its stored URL", got)
		}
	})
	t.Run("another host", func(t *testing.T) {
		now := time.Now()
		e := &cache.Entry{Key: "moved-1", BaseKey: "moved-1", Upstream: "up", Method: http.MethodGet,
			URL: "https://elsewhere.example/x", Status: 200, Header: http.Header{}, Body: []byte("x"), Size: 1, Created: now}
		if err := p.db.Put(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		doc, _ := p.page(t, http.MethodPost, "/entries/moved-1/revalidate", form, http.StatusOK)
		if got := text(testid(doc, "revalidation-error")); !strings.Contains(got, "elsewhere.example") || !strings.Contains(got, "unchanged") {
			t.Errorf("error %q", got)
		}
		if got := text(testid(doc, "body-text")); got != "x" {
			t.Errorf("body %q after a failed revalidation", got)
		}
	})
	t.Run("backend down", func(t *testing.T) {
		doc, _ := p.page(t, http.MethodPost, "/entries/moved-1/revalidate?backend=down", form, http.StatusServiceUnavailable)
		if got := text(testid(doc, "error-title")); got != `Backend "down" did not answer` {
			t.Errorf("title %q", got)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		doc, _ := p.page(t, http.MethodPost, "/entries/nope/revalidate", form, http.StatusNotFound)
		if testid(doc, "back-to-entries").Length() != 1 {
			t.Error("no way back to the entries")
		}
	})
	t.Run("without CSRF", func(t *testing.T) {
		p.page(t, http.MethodPost, "/entries/cred-1/revalidate", url.Values{}, http.StatusForbidden)
	})
}

func TestEntryDelete(t *testing.T) {
	p := newEntryPages(t)
	p.origin.set("/doomed", answer{header: http.Header{"Content-Type": {"text/plain"}}, body: "x"})
	p.fetch(t, "/doomed", "MISS")
	key := p.key(t, "/doomed")
	ctx := context.Background()

	// Without the CSRF token, or cross-site, nothing is deleted.
	p.page(t, http.MethodPost, "/entries/"+key+"/delete", url.Values{}, http.StatusForbidden)
	rec := httptest.NewRecorder()
	req := loopbackRequest(http.MethodPost, "/entries/"+key+"/delete", strings.NewReader(p.csrf(t).Encode()),
		"Content-Type", "application/x-www-form-urlencoded", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")
	p.router.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("cross-site delete: %d, want 403", rec.Code)
	}
	if _, ok, err := p.db.Get(ctx, key); err != nil || !ok {
		t.Fatalf("the entry is gone after refused deletes (%v)", err)
	}

	stored, _, err := p.db.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := stored.Size
	rec = p.do(t, http.MethodPost, "/entries/"+key+"/delete", p.csrf(t))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("delete: %d, want 303", rec.Code)
	}
	if got, want := rec.Header().Get("Location"), "/entries?deleted=1&freed="+strconv.FormatInt(sizeBefore, 10); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if _, ok, err := p.db.Get(ctx, key); err != nil || ok {
		t.Fatalf("the entry is still stored (%v)", err)
	}
	// Deleting it again says it is not there.
	doc, _ := p.page(t, http.MethodPost, "/entries/"+key+"/delete", p.csrf(t), http.StatusNotFound)
	if !strings.Contains(text(testid(doc, "error-title")), key) {
		t.Errorf("title %q does not name the key", text(testid(doc, "error-title")))
	}
	// A backend that fails leaves everything and says so.
	doc, _ = p.page(t, http.MethodPost, "/entries/"+key+"/delete?backend=down", p.csrf(t), http.StatusServiceUnavailable)
	if got := text(testid(doc, "error-title")); got != `Backend "down" did not answer` {
		t.Errorf("title %q", got)
	}
}

func TestEntryPageErrors(t *testing.T) {
	p := newEntryPages(t)
	tests := []struct {
		name, target string
		status       int
		title        string
	}{
		{"unknown key", "/entries/no-such-key", 404, "No entry with key no-such-key"},
		{"bad key", "/entries/a.b", 400, "The key in the path"},
		{"unknown backend", "/entries/abc?backend=nope", 404, `No backend named "nope"`},
		{"backend down", "/entries/abc?backend=down", 503, `Backend "down" did not answer`},
		{"unknown parameter", "/entries/abc?x=1", 400, "x"},
		{"body of unknown key", "/entries/no-such-key/body", 404, "No entry with key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, raw := p.page(t, http.MethodGet, tt.target, nil, tt.status)
			if got := text(testid(doc, "error-title")); !strings.Contains(got, tt.title) {
				t.Errorf("title %q, want it to contain %q", got, tt.title)
			}
			if text(testid(doc, "error-hint")) == "" {
				t.Error("no hint saying what to do")
			}
			if strings.Contains(raw, `"code"`) || strings.Contains(raw, "goroutine") {
				t.Error("the error page shows JSON or a trace")
			}
			if tt.status == 404 && tt.name != "unknown backend" && testid(doc, "back-to-entries").AttrOr("href", "") != "/entries" {
				t.Error("the 404 has no link to the entries list")
			}
		})
	}
}

func TestEntryPageScriptsOnlyFromStatic(t *testing.T) {
	p := newEntryPages(t)
	p.origin.set("/x.html", answer{header: http.Header{"Content-Type": {"text/html"}}, body: `<script>alert(1)</script><img src=x onerror=alert(2)>`})
	p.fetch(t, "/x.html", "MISS")
	_, raw := p.page(t, http.MethodGet, "/entries/"+p.key(t, "/x.html"), nil, http.StatusOK)
	doc, err := goquery.NewDocumentFromReader(bytes.NewReader([]byte(raw)))
	if err != nil {
		t.Fatal(err)
	}
	doc.Find("script").Each(func(_ int, s *goquery.Selection) {
		if src := s.AttrOr("src", ""); !strings.HasPrefix(src, "/static/") || strings.TrimSpace(s.Text()) != "" {
			t.Errorf("inline or foreign script %q", src)
		}
	})
	doc.Find("*").Each(func(_ int, s *goquery.Selection) {
		for _, a := range s.Nodes[0].Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") {
				t.Errorf("<%s %s=...> is an inline handler", goquery.NodeName(s), a.Key)
			}
		}
	})
}

// BenchmarkEntryPage is the detail page's server time over SQLite, for a
// small JSON body and for one past what the viewer colours.
func BenchmarkEntryPage(b *testing.B) {
	p := newEntryPages(b)
	for _, bc := range []struct{ name, path, body string }{
		{"json-9KiB", "/small.json", `{"items":[` + strings.Repeat(`{"id":1,"name":"x","ok":true},`, 300) + `{}]}`},
		{"json-240KiB", "/big.json", `{"items":[` + strings.Repeat(`{"id":1,"name":"x","ok":true},`, 8000) + `{}]}`},
	} {
		p.origin.set(bc.path, jsonAnswer(bc.body))
		p.fetch(b, bc.path, "MISS")
		target := "/entries/" + p.key(b, bc.path)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				rec := p.do(b, http.MethodGet, target, nil)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}
