package e2e_test

// Tests of the admin API (/api/...) over real HTTP against a running
// server, a real upstream and real backends.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// api is a client of one server's admin API.
type api struct {
	tb    testing.TB
	base  string
	token string
}

func newAPI(tb testing.TB, srv *web.Server) *api {
	return &api{tb: tb, base: srv.URL()}
}

// do sends a request; body is marshalled to JSON unless it is a string or
// an io.Reader. A body goes as application/json (application/x-ndjson to
// /api/import), as the admin side requires.
func (c *api) do(method, path string, body any) answer {
	c.tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case io.Reader:
		r = b
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.tb.Fatal(err)
		}
		r = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.tb.Fatal(err)
	}
	if r != nil {
		ct := "application/json"
		if strings.HasPrefix(path, "/api/import") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.tb.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// json sends a request, wants status and decodes the answer into out
// (when not nil).
func (c *api) json(method, path string, body any, status int, out any) answer {
	c.tb.Helper()
	a := c.do(method, path, body)
	if a.status != status {
		c.tb.Fatalf("%s %s: status %d, want %d: %s", method, path, a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.tb.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(a.body), out); err != nil {
			c.tb.Fatalf("%s %s: %v in %s", method, path, err, a.body)
		}
	}
	return a
}

// apiErr is the body of every error answer.
type apiErr struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// wantError wants an error answer with status and code whose message
// contains each of the given strings.
func (c *api) wantError(method, path string, body any, status int, code string, contains ...string) apiErr {
	c.tb.Helper()
	var e apiErr
	c.json(method, path, body, status, &e)
	if e.Code != code {
		c.tb.Fatalf("%s %s: code %q, want %q (%s)", method, path, e.Code, code, e.Error)
	}
	for _, s := range contains {
		if !strings.Contains(e.Error, s) {
			c.tb.Fatalf("%s %s: error %q does not mention %q", method, path, e.Error, s)
		}
	}
	return e
}

type entry struct {
	Key         string     `json:"key"`
	Upstream    string     `json:"upstream"`
	Method      string     `json:"method"`
	URL         string     `json:"url"`
	Status      int        `json:"status"`
	ContentType string     `json:"content_type"`
	Size        int64      `json:"size"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires"`
	Fresh       bool       `json:"fresh"`
	Hits        int64      `json:"hits"`
	Reason      string     `json:"reason"`
}

type entryList struct {
	Backend string        `json:"backend"`
	Entries []entry       `json:"entries"`
	Next    string        `json:"next"`
	Limit   int           `json:"limit"`
	Total   *cache.Totals `json:"total"`
}

type job struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	State  string          `json:"state"`
	Done   int64           `json:"done"`
	Total  int64           `json:"total"`
	Failed int64           `json:"failed"`
	Errors []jobErr        `json:"errors"`
	Error  string          `json:"error"`
	Result json.RawMessage `json:"result"`
}

type jobErr struct {
	Key   string `json:"key"`
	Line  int64  `json:"line"`
	Error string `json:"error"`
}

// waitJob polls a job until it ends.
func (c *api) waitJob(id string) job {
	c.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var j job
		c.json("GET", "/api/jobs/"+id, nil, http.StatusOK, &j)
		if j.State != "running" {
			return j
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("job %s still running: %+v", id, j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// list walks every page of a listing and returns the entries in order.
func (c *api) listAll(query string) []entry {
	c.tb.Helper()
	var all []entry
	next := ""
	for pages := 0; ; pages++ {
		q := query
		if next != "" {
			q += "&next=" + url.QueryEscape(next)
		}
		var l entryList
		c.json("GET", "/api/entries?"+q, nil, http.StatusOK, &l)
		all = append(all, l.Entries...)
		if l.Next == "" {
			return all
		}
		next = l.Next
		if pages > 100000 {
			c.tb.Fatal("pagination does not end")
		}
	}
}

// putEntries stores n synthetic entries of upstream name, whose URLs lie
// on base (the upstream's URL) under path+i, directly in b: a quick way to
// thousands of entries. Sizes vary with i.
func putEntries(tb testing.TB, b cache.Backend, name, base, path string, n int, mod func(i int, e *cache.Entry)) []string {
	tb.Helper()
	ctx := context.Background()
	keys := make([]string, n)
	now := time.Now()
	for i := 0; i < n; i++ {
		u := fmt.Sprintf("%s%s%d", base, path, i)
		key := cache.MakeKey(name, "GET", u)
		body := bytes.Repeat([]byte("x"), i%500)
		e := &cache.Entry{
			Key: key, BaseKey: key, Upstream: name, Method: "GET", URL: u, Status: 200,
			Header: http.Header{"Content-Type": {"text/plain"}}, Body: body, Size: int64(len(body)),
			ContentType: "text/plain", RequestTime: now, Created: now.Add(time.Duration(i) * time.Millisecond),
			Expires: now.Add(time.Hour), ETag: fmt.Sprintf(`"e%d"`, i), Reason: "synthetic",
		}
		if mod != nil {
			mod(i, e)
		}
		if err := b.Put(ctx, e); err != nil {
			tb.Fatal(err)
		}
		keys[i] = key
	}
	return keys
}

func TestAPIEntriesBrowse(t *testing.T) {
	bin := startHTTPBin(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	c := newAPI(t, srv)
	for _, p := range []string{"/get?x=1", "/get?x=2", "/json", "/html", "/bytes/2048?seed=1", "/base64/aGVsbG8="} {
		wantCache(t, get(t, srv.URL()+"/fetch/bin"+p), "MISS")
	}
	wantCache(t, get(t, srv.URL()+"/fetch/bin/json"), "HIT")
	srv.Gateway().FlushHits(context.Background())

	var l entryList
	c.json("GET", "/api/entries", nil, http.StatusOK, &l)
	if l.Backend != "default" || len(l.Entries) != 6 || l.Total == nil || l.Total.Entries != 6 || l.Next != "" {
		t.Fatalf("listing: %+v", l)
	}
	var sum int64
	for _, e := range l.Entries {
		sum += e.Size
		if e.Upstream != "bin" || e.Method != "GET" || !e.Fresh || e.Expires == nil || e.Reason == "" {
			t.Fatalf("entry %+v", e)
		}
	}
	if l.Total.Bytes != sum {
		t.Fatalf("total bytes %d, entries sum to %d", l.Total.Bytes, sum)
	}

	t.Run("sort by size desc", func(t *testing.T) {
		c.json("GET", "/api/entries?sort=size&order=desc", nil, http.StatusOK, &l)
		for i := 1; i < len(l.Entries); i++ {
			if l.Entries[i-1].Size < l.Entries[i].Size {
				t.Fatalf("not by size desc: %d before %d", l.Entries[i-1].Size, l.Entries[i].Size)
			}
		}
		if !strings.HasSuffix(l.Entries[0].URL, "/html") { // 3.7 KB, the largest
			t.Fatalf("largest first: %+v", l.Entries[0])
		}
	})
	t.Run("sort by hits", func(t *testing.T) {
		c.json("GET", "/api/entries?sort=hits", nil, http.StatusOK, &l)
		if !strings.HasSuffix(l.Entries[0].URL, "/json") || l.Entries[0].Hits != 1 {
			t.Fatalf("most hit first: %+v", l.Entries[0])
		}
	})
	t.Run("pagination", func(t *testing.T) {
		all := c.listAll("sort=url&limit=2")
		if len(all) != 6 {
			t.Fatalf("walked %d entries, want 6", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i-1].URL >= all[i].URL {
				t.Fatalf("not by URL ascending: %q then %q", all[i-1].URL, all[i].URL)
			}
		}
	})

	filters := []struct {
		name  string
		query string
		want  int
	}{
		{"url substring", "url=/get", 2},
		{"url glob", "url=*/get%3Fx=1", 1},
		{"content type exact", "content_type=application/json", 3},
		{"content type prefix", "content_type=text/", 2}, // html, base64 (text/plain)
		{"upstream", "upstream=bin", 6},
		{"other upstream", "upstream=nope", 0},
		{"status", "status=200", 6},
		{"method", "method=get", 6},
		{"fresh", "freshness=fresh", 6},
		{"expired", "freshness=expired", 0},
		{"min size", "min_size=2KiB", 2}, // html, bytes/2048
		{"max size", "max_size=100", 1},
		{"created range", "created_after=-1h&created_before=1m", 6},
		{"created in future", "created_after=1h", 0},
		{"expires before", "expires_before=2h", 6},
		{"expires after", "expires_after=" + url.QueryEscape(time.Now().Add(2*time.Hour).Format(time.RFC3339)), 0},
	}
	for _, tc := range filters {
		t.Run(tc.name, func(t *testing.T) {
			var l entryList
			c.json("GET", "/api/entries?"+tc.query, nil, http.StatusOK, &l)
			if len(l.Entries) != tc.want || l.Total.Entries != int64(tc.want) {
				t.Fatalf("%s: %d entries (total %d), want %d", tc.query, len(l.Entries), l.Total.Entries, tc.want)
			}
		})
	}

	bad := []struct {
		name, query, code string
		mention           []string
	}{
		{"unknown parameter", "upstrem=bin", "unknown_parameter", []string{"upstrem", "accepted:", "upstream"}},
		{"sort", "sort=weight", "bad_parameter", []string{"sort", "size"}},
		{"order", "order=up", "bad_parameter", []string{"order", "asc, desc"}},
		{"limit", "limit=0", "bad_parameter", []string{"limit"}},
		{"status", "status=abc", "bad_parameter", []string{"status"}},
		{"freshness", "freshness=old", "bad_parameter", []string{"fresh, expired, stale"}},
		{"size", "min_size=big", "bad_parameter", []string{"min_size"}},
		{"time", "created_after=yesterday", "bad_parameter", []string{"created_after", "RFC 3339"}},
		{"cursor", "next=garbage", "bad_parameter", []string{"next", "cursor"}},
		{"twice", "upstream=a&upstream=b", "bad_parameter", []string{"once"}},
	}
	for _, tc := range bad {
		t.Run("400 "+tc.name, func(t *testing.T) {
			c.wantError("GET", "/api/entries?"+tc.query, nil, http.StatusBadRequest, tc.code, tc.mention...)
		})
	}
	t.Run("cursor of another sort", func(t *testing.T) {
		var l entryList
		c.json("GET", "/api/entries?sort=size&limit=1", nil, http.StatusOK, &l)
		c.wantError("GET", "/api/entries?sort=url&next="+l.Next, nil, http.StatusBadRequest, "bad_parameter", "another sort")
	})
	t.Run("count=false", func(t *testing.T) {
		var l entryList
		c.json("GET", "/api/entries?count=false", nil, http.StatusOK, &l)
		if l.Total != nil || len(l.Entries) != 6 {
			t.Fatalf("%+v", l)
		}
	})
	c.wantError("GET", "/api/entries?backend=elsewhere", nil, http.StatusNotFound, "unknown_backend", "elsewhere", "default")
	c.wantError("GET", "/api/nothing", nil, http.StatusNotFound, "not_found")
	c.wantError("PUT", "/api/entries", nil, http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestAPIEntryDetailBodyDelete(t *testing.T) {
	bin := startHTTPBin(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	c := newAPI(t, srv)
	fetched := get(t, srv.URL()+"/fetch/bin/json")
	wantCache(t, fetched, "MISS")

	var l entryList
	c.json("GET", "/api/entries?url=/json", nil, http.StatusOK, &l)
	key := l.Entries[0].Key

	var d struct {
		entry
		RequestHeaders http.Header `json:"request_headers"`
		Headers        http.Header `json:"headers"`
		AgeSeconds     int64       `json:"age_seconds"`
		TTLSeconds     *int64      `json:"ttl_seconds"`
		Explanation    *struct {
			Key    string `json:"key"`
			Rule   string `json:"rule"`
			Reason string `json:"reason"`
			Cached *struct {
				Answer string `json:"answer"`
				Stored string `json:"stored_reason"`
			} `json:"cached"`
		} `json:"explanation"`
	}
	c.json("GET", "/api/entries/"+key, nil, http.StatusOK, &d)
	if d.Key != key || !strings.HasPrefix(d.Headers.Get("Content-Type"), "application/json") || d.TTLSeconds == nil || *d.TTLSeconds < 3500 {
		t.Fatalf("detail: %+v", d)
	}
	if x := d.Explanation; x == nil || x.Cached == nil || x.Cached.Answer != "HIT" || x.Cached.Stored == "" || x.Reason == "" {
		t.Fatalf("explanation: %+v", d.Explanation)
	}

	body := c.do("GET", "/api/entries/"+key+"/body", nil)
	if body.status != 200 || body.body != fetched.body || !strings.HasPrefix(body.header.Get("Content-Type"), "application/json") {
		t.Fatalf("body: %d %q %q", body.status, body.header.Get("Content-Type"), body.body)
	}
	if body.header.Get("Content-Security-Policy") == "" || body.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("a stored body must not run on the admin origin: %v", body.header)
	}

	c.wantError("GET", "/api/entries/"+key+"?backend=nope", nil, http.StatusNotFound, "unknown_backend")
	c.wantError("GET", "/api/entries/"+key+"?verbose=1", nil, http.StatusBadRequest, "unknown_parameter", "verbose", "backend")
	c.wantError("GET", "/api/entries/..%2F..%2Fetc%2Fpasswd", nil, http.StatusBadRequest, "bad_key")
	c.wantError("GET", "/api/entries/has.dot/body", nil, http.StatusBadRequest, "bad_key")
	c.wantError("GET", "/api/entries/"+cache.MakeKey("missing"), nil, http.StatusNotFound, "entry_not_found")

	var del map[string]any
	c.json("DELETE", "/api/entries/"+key, nil, http.StatusOK, &del)
	if del["deleted"] != true {
		t.Fatalf("delete: %v", del)
	}
	c.wantError("DELETE", "/api/entries/"+key, nil, http.StatusNotFound, "entry_not_found")
	c.wantError("GET", "/api/entries/"+key+"/body", nil, http.StatusNotFound, "entry_not_found")
	wantCache(t, get(t, srv.URL()+"/fetch/bin/json"), "MISS")
}

func TestAPIAuth(t *testing.T) {
	bin := startHTTPBin(t)
	const token = "s3cret-token"
	srv := startServer(t, web.Config{Backend: "memory://", AdminToken: token, Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	c := newAPI(t, srv)

	a := c.do("GET", "/api/entries", nil)
	if a.status != http.StatusUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %v", a.status, a.header)
	}
	c.wantError("GET", "/api/stats", nil, http.StatusUnauthorized, "unauthorized", "Bearer")
	c.token = "wrong"
	c.wantError("GET", "/api/stats", nil, http.StatusUnauthorized, "invalid_token")
	c.token = token + "x"
	c.wantError("GET", "/api/stats", nil, http.StatusUnauthorized, "invalid_token")
	c.token = token
	c.json("GET", "/api/stats", nil, http.StatusOK, nil)
	// Unknown admin paths are behind the token too.
	c.token = ""
	c.wantError("GET", "/api/nothing", nil, http.StatusUnauthorized, "unauthorized")
	// The gateway is not.
	wantCache(t, get(t, srv.URL()+"/fetch/bin/get"), "MISS")
}

func TestAPIOffLoopbackWithoutToken(t *testing.T) {
	srv := startServer(t, web.Config{Listen: "0.0.0.0:0", Backend: "memory://"})
	c := newAPI(t, srv)
	for _, p := range []string{"/api/entries", "/api/openapi.json", "/api/nothing"} {
		c.wantError("GET", p, nil, http.StatusForbidden, "admin_disabled", "-admin-token", "CACHEGATE_ADMIN_TOKEN")
	}
	// With a token, the same listen address serves the API.
	srv = startServer(t, web.Config{Listen: "0.0.0.0:0", Backend: "memory://", AdminToken: "t"})
	c = newAPI(t, srv)
	c.token = "t"
	c.json("GET", "/api/entries", nil, http.StatusOK, nil)
}

// mutable is an upstream whose answers the test changes: per path a
// status, a body and an ETag, with If-None-Match answered by 304.
type mutable struct {
	mu    sync.Mutex
	items map[string]*item
}

type item struct {
	status int
	body   string
	etag   string
}

func startMutable(t testing.TB) (*mutable, string) {
	m := &mutable{items: map[string]*item{}}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		it, ok := m.items[r.URL.Path]
		var cp item
		if ok {
			cp = *it
		}
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("ETag", cp.etag)
		if cp.status == 200 && r.Header.Get("If-None-Match") == cp.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.WriteHeader(cp.status)
		io.WriteString(w, cp.body)
	}))
	t.Cleanup(s.Close)
	return m, s.URL
}

func (m *mutable) set(path string, status int, body, etag string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[path] = &item{status, body, etag}
}

type revalidation struct {
	Key     string `json:"key"`
	Outcome string `json:"outcome"`
	Status  int    `json:"upstream_status"`
	Stored  bool   `json:"stored"`
	Error   string `json:"error"`
	Changes *struct {
		StatusBefore int  `json:"status_before"`
		StatusAfter  int  `json:"status_after"`
		BodyChanged  bool `json:"body_changed"`
		Headers      []struct {
			Name, Before, After string
		} `json:"headers"`
		BodyDiff string `json:"body_diff"`
	} `json:"changes"`
}

func TestAPIRevalidateEntry(t *testing.T) {
	m, base := startMutable(t)
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("mut", base)}})
	c := newAPI(t, srv)
	m.set("/doc", 200, "line one\nline two\n", `"v1"`)
	wantCache(t, get(t, srv.URL()+"/fetch/mut/doc"), "MISS")
	var l entryList
	c.json("GET", "/api/entries?upstream=mut", nil, http.StatusOK, &l)
	key := l.Entries[0].Key
	path := "/api/entries/" + key + "/revalidate"

	var r revalidation
	c.json("POST", path, nil, http.StatusOK, &r)
	if r.Outcome != "not_modified" || r.Status != 304 || !r.Stored {
		t.Fatalf("unchanged: %+v", r)
	}

	m.set("/doc", 200, "line one\nline 2\n", `"v2"`)
	c.json("POST", path, nil, http.StatusOK, &r)
	if r.Outcome != "updated" || r.Changes == nil || !r.Changes.BodyChanged {
		t.Fatalf("changed: %+v", r)
	}
	if d := r.Changes.BodyDiff; !strings.Contains(d, "-line two") || !strings.Contains(d, "+line 2") {
		t.Fatalf("body diff %q", d)
	}
	if got := get(t, srv.URL()+"/fetch/mut/doc"); got.body != "line one\nline 2\n" {
		t.Fatalf("the cache serves %q after the update", got.body)
	}

	m.set("/doc", 503, "down", `"v2"`)
	c.json("POST", path, nil, http.StatusOK, &r)
	if r.Outcome != "error" || r.Error == "" {
		t.Fatalf("upstream failing: %+v", r)
	}
	c.json("GET", "/api/entries/"+key, nil, http.StatusOK, nil) // kept

	m.set("/doc", 410, "gone", `"v2"`)
	c.json("POST", path, nil, http.StatusOK, &r)
	if r.Outcome != "gone" {
		t.Fatalf("upstream says gone: %+v", r)
	}
	c.wantError("GET", "/api/entries/"+key, nil, http.StatusNotFound, "entry_not_found")
	c.wantError("POST", path, nil, http.StatusNotFound, "entry_not_found")
	c.wantError("POST", path+"?backend=x", nil, http.StatusNotFound, "unknown_backend")

	// An entry of an upstream this server does not know (imported).
	keys := putEntries(t, srv.Backends()["default"], "elsewhere", "https://example.com", "/x", 1, nil)
	c.wantError("POST", "/api/entries/"+keys[0]+"/revalidate", nil, http.StatusConflict, "unknown_upstream", "elsewhere")
}

// peakUpstream answers conditional requests with 304 after a delay and
// records the most requests it ever had in flight at once.
type peakUpstream struct {
	url      string
	delay    atomic.Int64 // nanoseconds
	inFlight atomic.Int64
	peak     atomic.Int64
	calls    atomic.Int64
}

func startPeak(t testing.TB, delay time.Duration) *peakUpstream {
	p := &peakUpstream{}
	p.delay.Store(int64(delay))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.inFlight.Add(1)
		defer p.inFlight.Add(-1)
		p.calls.Add(1)
		for {
			old := p.peak.Load()
			if n <= old || p.peak.CompareAndSwap(old, n) {
				break
			}
		}
		select {
		case <-time.After(time.Duration(p.delay.Load())):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("ETag", r.Header.Get("If-None-Match"))
		w.WriteHeader(http.StatusNotModified)
	}))
	t.Cleanup(s.Close)
	p.url = s.URL
	return p
}

// bulkServer runs a server with the backend dsn as default, a memory
// backend "archive", two peak upstreams and httpbin.
func bulkServer(t *testing.T, dsn string, delay time.Duration) (*web.Server, *api, *peakUpstream, *peakUpstream) {
	a, b := startPeak(t, delay), startPeak(t, delay)
	srv := startServer(t, web.Config{
		Backend:   dsn,
		Backends:  map[string]string{"archive": "memory://"},
		Upstreams: []web.UpstreamConfig{upstream("a", a.url), upstream("b", b.url), upstream("bin", startHTTPBin(t))},
	})
	return srv, newAPI(t, srv), a, b
}

// testBulk drives the bulk endpoints on the default backend dsn, over
// perUpstream entries of each of two upstreams.
func testBulk(t *testing.T, dsn func(testing.TB) string, perUpstream int64) {
	t.Run("revalidate", func(t *testing.T) {
		t.Parallel()
		// The upstream takes long enough that requests overlap however
		// slow the backend, and the job about a second at concurrency 3.
		delay := 3 * time.Second / time.Duration(perUpstream)
		srv, c, ua, ub := bulkServer(t, dsn(t), delay)
		def := srv.Backends()["default"]
		putEntries(t, def, "a", ua.url, "/r/", int(perUpstream), nil)
		putEntries(t, def, "b", ub.url, "/r/", int(perUpstream), nil)

		var j job
		c.json("POST", "/api/revalidate", map[string]any{"concurrency": 3}, http.StatusAccepted, &j)
		j = c.waitJob(j.ID)
		if j.State != "done" || j.Done != 2*perUpstream || j.Total != 2*perUpstream || j.Failed != 0 {
			t.Fatalf("job: %+v", j)
		}
		var res struct {
			NotModified int64 `json:"not_modified"`
		}
		json.Unmarshal(j.Result, &res)
		if res.NotModified != 2*perUpstream {
			t.Fatalf("result %s", j.Result)
		}
		for _, u := range []*peakUpstream{ua, ub} {
			if got := u.calls.Load(); got != perUpstream {
				t.Fatalf("upstream got %d calls, want %d", got, perUpstream)
			}
			if p := u.peak.Load(); p > 3 || p < 2 {
				t.Fatalf("upstream saw %d requests at once; want 2 to 3 (concurrency 3)", p)
			}
		}

		// By filter: only upstream a's, and only some of them.
		c.json("POST", "/api/revalidate", map[string]any{"filter": map[string]any{"upstream": "a", "url": "*/r/1?"}}, http.StatusAccepted, &j)
		want := max(0, min(perUpstream, 20)-10) // /r/10 to /r/19
		if j = c.waitJob(j.ID); j.State != "done" || j.Total != want || j.Done != want {
			t.Fatalf("filtered job: %+v", j)
		}
		c.wantError("POST", "/api/revalidate", map[string]any{"concurrency": 1000}, http.StatusBadRequest, "bad_body", "concurrency")
		c.wantError("POST", "/api/revalidate", map[string]any{"filter": map[string]any{"colour": "red"}}, http.StatusBadRequest, "unknown_parameter", "colour", "upstream")

		// A second bulk revalidation of the same backend while one runs: 409.
		ua.delay.Store(int64(50 * time.Millisecond))
		ub.delay.Store(int64(50 * time.Millisecond))
		var first job
		c.json("POST", "/api/revalidate", nil, http.StatusAccepted, &first)
		c.wantError("POST", "/api/revalidate", nil, http.StatusConflict, "job_conflict", first.ID)
		// Another backend is free.
		putEntries(t, srv.Backends()["archive"], "a", ua.url, "/r/", 3, nil)
		var other job
		c.json("POST", "/api/revalidate?backend=archive", nil, http.StatusAccepted, &other)
		// Cancel the first.
		var cancelled job
		c.json("DELETE", "/api/jobs/"+first.ID, nil, http.StatusAccepted, &cancelled)
		if j := c.waitJob(first.ID); j.State != "cancelled" || j.Done >= 2*perUpstream {
			t.Fatalf("cancelled job: %+v", j)
		}
		c.wantError("DELETE", "/api/jobs/"+first.ID, nil, http.StatusConflict, "job_finished")
		if j := c.waitJob(other.ID); j.State != "done" || j.Done != 3 {
			t.Fatalf("job on archive: %+v", j)
		}
		c.wantError("GET", "/api/jobs/nope", nil, http.StatusNotFound, "job_not_found")
		var jl struct{ Jobs []job }
		c.json("GET", "/api/jobs", nil, http.StatusOK, &jl)
		if len(jl.Jobs) != 4 {
			t.Fatalf("%d jobs listed, want 4", len(jl.Jobs))
		}
	})

	t.Run("revalidate through the gateway", func(t *testing.T) {
		t.Parallel()
		srv, c, _, _ := bulkServer(t, dsn(t), 0)
		for i := 0; i < 5; i++ {
			wantCache(t, get(t, fmt.Sprintf("%s/fetch/bin/etag/v%d", srv.URL(), i)), "MISS")
		}
		wantCache(t, get(t, srv.URL()+"/fetch/bin/uuid"), "MISS")
		var j job
		c.json("POST", "/api/revalidate", map[string]any{"filter": map[string]any{"upstream": "bin"}}, http.StatusAccepted, &j)
		j = c.waitJob(j.ID)
		var res struct {
			NotModified int64 `json:"not_modified"`
			Updated     int64 `json:"updated"`
		}
		json.Unmarshal(j.Result, &res)
		if j.State != "done" || res.NotModified != 5 || res.Updated != 1 {
			t.Fatalf("job %+v result %s", j, j.Result)
		}
	})

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		srv, c, ua, ub := bulkServer(t, dsn(t), 0)
		def := srv.Backends()["default"]
		keysA := putEntries(t, def, "a", ua.url, "/r/", int(perUpstream), nil)
		putEntries(t, def, "b", ub.url, "/r/", int(perUpstream), nil)
		var out struct{ Deleted int64 }
		c.json("POST", "/api/delete", map[string]any{"filter": map[string]any{"upstream": "b", "min_size": 250}}, http.StatusOK, &out)
		bigB := int64(0) // entries of b with a body of at least 250 bytes
		for i := int64(0); i < perUpstream; i++ {
			if i%500 >= 250 {
				bigB++
			}
		}
		if out.Deleted != bigB {
			t.Fatalf("deleted %d by filter, want %d", out.Deleted, bigB)
		}
		c.json("POST", "/api/delete", map[string]any{"keys": keysA[:10]}, http.StatusOK, &out)
		if out.Deleted != 10 {
			t.Fatalf("deleted %d by keys, want 10", out.Deleted)
		}
		c.wantError("POST", "/api/delete", nil, http.StatusBadRequest, "empty_selection", "all")
		c.wantError("POST", "/api/delete", map[string]any{"filter": map[string]any{}}, http.StatusBadRequest, "empty_selection")
		c.wantError("POST", "/api/delete", map[string]any{"keys": []string{"../etc"}}, http.StatusBadRequest, "bad_key")
		c.wantError("POST", "/api/delete", map[string]any{"everything": true}, http.StatusBadRequest, "bad_body", "everything", "all, filter, keys")
		c.wantError("POST", "/api/delete", `{"keys": `, http.StatusBadRequest, "bad_body")
		c.wantError("POST", "/api/delete", map[string]any{"filter": map[string]any{"status": "ok"}}, http.StatusBadRequest, "bad_parameter", "filter.status")
		c.json("POST", "/api/delete", map[string]any{"all": true}, http.StatusOK, &out)
		if out.Deleted != 2*perUpstream-bigB-10 {
			t.Fatalf("deleted %d with all", out.Deleted)
		}
		var l entryList
		if c.json("GET", "/api/entries", nil, http.StatusOK, &l); l.Total.Entries != 0 {
			t.Fatalf("%d entries left", l.Total.Entries)
		}
	})

	t.Run("export, copy and import", func(t *testing.T) {
		t.Parallel()
		srv, c, ua, _ := bulkServer(t, dsn(t), 0)
		def := srv.Backends()["default"]
		n := 2 * perUpstream
		putEntries(t, def, "a", ua.url, "/r/", int(n), nil)
		wantCache(t, get(t, srv.URL()+"/fetch/bin/json"), "MISS")

		a := c.do("POST", "/api/export", map[string]any{"filter": map[string]any{"upstream": "a"}})
		if a.status != 200 || a.header.Get("Content-Type") != "application/x-ndjson" ||
			!strings.Contains(a.header.Get("Content-Disposition"), "attachment") || a.header.Get("X-Cachegate-Job") == "" {
			t.Fatalf("export: %d %v", a.status, a.header)
		}
		lines := strings.Split(strings.TrimSuffix(a.body, "\n"), "\n")
		if int64(len(lines)) != n+1 || !strings.Contains(lines[0], `"cachegate-export"`) {
			t.Fatalf("export has %d lines, want %d; first %.100s", len(lines), n+1, lines[0])
		}
		if j := c.waitJob(a.header.Get("X-Cachegate-Job")); j.State != "done" || j.Done != n {
			t.Fatalf("export job %+v", j)
		}
		ndjson := a.body

		a = c.do("POST", "/api/export", map[string]any{"format": "har", "filter": map[string]any{"upstream": "bin"}})
		var har struct {
			Log struct {
				Entries []struct {
					Request struct{ URL string } `json:"request"`
				} `json:"entries"`
			} `json:"log"`
		}
		if err := json.Unmarshal([]byte(a.body), &har); err != nil || a.status != 200 || len(har.Log.Entries) != 1 {
			t.Fatalf("HAR: %d %v %.200s", a.status, err, a.body)
		}
		c.wantError("POST", "/api/export", map[string]any{"format": "xml"}, http.StatusBadRequest, "bad_body", "ndjson, har")

		// Copy into the archive backend.
		var j job
		c.json("POST", "/api/export", map[string]any{"to": "archive"}, http.StatusAccepted, &j)
		if j = c.waitJob(j.ID); j.State != "done" || j.Done != n+1 || j.Kind != "copy" {
			t.Fatalf("copy job %+v", j)
		}
		var l entryList
		if c.json("GET", "/api/entries?backend=archive", nil, http.StatusOK, &l); l.Total.Entries != n+1 {
			t.Fatalf("archive holds %d entries, want %d", l.Total.Entries, n+1)
		}
		c.wantError("POST", "/api/export", map[string]any{"to": "default"}, http.StatusBadRequest, "same_backend")
		c.wantError("POST", "/api/export", map[string]any{"to": "nowhere"}, http.StatusNotFound, "unknown_backend")

		// Import the download into a cleared archive.
		var del struct{ Deleted int64 }
		c.json("POST", "/api/delete?backend=archive", map[string]any{"all": true}, http.StatusOK, &del)
		c.json("POST", "/api/import?backend=archive", ndjson, http.StatusOK, &j)
		if j.State != "done" || j.Done != n || j.Kind != "import" {
			t.Fatalf("import %+v", j)
		}
		if c.json("GET", "/api/entries?backend=archive&upstream=a", nil, http.StatusOK, &l); l.Total.Entries != n {
			t.Fatalf("archive holds %d entries after import, want %d", l.Total.Entries, n)
		}

		// A damaged line stops the import and is reported with its number,
		// unless on_error=skip.
		damaged := lines[0] + "\n" + lines[1] + "\n{\"key\": \"nope\"\n" + lines[2] + "\n"
		var bad struct {
			apiErr
			Job job `json:"job"`
		}
		c.json("POST", "/api/import?backend=archive", damaged, http.StatusBadRequest, &bad)
		if bad.Code != "bad_import" || !strings.Contains(bad.Error, "line 3") || bad.Job.Done != 1 {
			t.Fatalf("damaged import: %+v", bad)
		}
		c.json("POST", "/api/import?backend=archive&on_error=skip", damaged, http.StatusOK, &j)
		if j.Done != 2 || j.Failed != 1 || len(j.Errors) != 1 || j.Errors[0].Line != 3 {
			t.Fatalf("import skipping: %+v", j)
		}
		c.wantError("POST", "/api/import?backend=archive", "not an export\n", http.StatusBadRequest, "bad_import")
		c.wantError("POST", "/api/import?on_error=maybe", "", http.StatusBadRequest, "bad_parameter", "stop, skip")
	})

	t.Run("purge expired", func(t *testing.T) {
		t.Parallel()
		srv, c, ua, _ := bulkServer(t, dsn(t), 0)
		def := srv.Backends()["default"]
		putEntries(t, def, "a", ua.url, "/fresh/", 20, nil)
		putEntries(t, def, "a", ua.url, "/old/", 30, func(i int, e *cache.Entry) { e.Expires = time.Now().Add(-time.Minute) })
		var l entryList
		if c.json("GET", "/api/entries?freshness=expired", nil, http.StatusOK, &l); l.Total.Entries != 30 {
			t.Fatalf("%d expired", l.Total.Entries)
		}
		var out struct {
			Deleted  int64
			Vacuumed bool
		}
		_, canVacuum := def.(cache.Vacuumer)
		q := ""
		if canVacuum {
			q = "?vacuum=true"
		} else {
			c.wantError("POST", "/api/purge-expired?vacuum=true", nil, http.StatusBadRequest, "cannot_vacuum")
		}
		c.json("POST", "/api/purge-expired"+q, nil, http.StatusOK, &out)
		if out.Deleted != 30 || out.Vacuumed != canVacuum {
			t.Fatalf("purge: %+v", out)
		}
		if c.json("GET", "/api/entries", nil, http.StatusOK, &l); l.Total.Entries != 20 {
			t.Fatalf("%d left", l.Total.Entries)
		}
	})
}

// TestAPIBulkSQLite runs the bulk jobs over 3,000 entries (300 under the
// race detector, see bulkScale).
func TestAPIBulkSQLite(t *testing.T) {
	testBulk(t, sqliteDSN, 1500/bulkScale)
}

func TestAPIStatsUpstreamsBackendsExplain(t *testing.T) {
	bin := startHTTPBin(t)
	dsn := sqliteDSN(t)
	srv := startServer(t, web.Config{
		Backend:   dsn,
		Backends:  map[string]string{"archive": "memory://?max_size=1MiB", "same": dsn},
		Upstreams: []web.UpstreamConfig{upstream("bin", bin)},
	})
	c := newAPI(t, srv)
	for i := 0; i < 3; i++ {
		get(t, srv.URL()+"/fetch/bin/get?n=1")
	}
	get(t, srv.URL()+"/fetch/bin/json")

	var st struct {
		Upstreams map[string]struct {
			Requests int64   `json:"requests"`
			Hits     int64   `json:"hits"`
			Misses   int64   `json:"misses"`
			HitRatio float64 `json:"hit_ratio"`
		} `json:"upstreams"`
		Total struct {
			Requests       int64 `json:"requests"`
			BytesFromCache int64 `json:"bytes_from_cache"`
		} `json:"total"`
		Backends map[string]cache.Totals `json:"backends"`
		History  []json.RawMessage       `json:"history"`
	}
	c.json("GET", "/api/stats", nil, http.StatusOK, &st)
	u := st.Upstreams["bin"]
	if u.Requests != 4 || u.Hits != 2 || u.Misses != 2 || u.HitRatio != 0.5 || st.Total.Requests != 4 || st.Total.BytesFromCache == 0 {
		t.Fatalf("stats: %+v", st)
	}
	if st.Backends["default"].Entries != 2 || st.Backends["same"] != st.Backends["default"] || len(st.History) == 0 {
		t.Fatalf("stats backends %v, %d history points", st.Backends, len(st.History))
	}
	c.json("GET", "/api/stats?history=false", nil, http.StatusOK, &st)
	c.wantError("GET", "/api/stats?history=maybe", nil, http.StatusBadRequest, "bad_parameter", "true, false")

	var ups struct {
		Upstreams []struct {
			Name, URL, Backend, Mode string
			ExpireAfter              string `json:"expire_after"`
			Healthy                  bool
			Requests                 int64
		}
	}
	c.json("GET", "/api/upstreams", nil, http.StatusOK, &ups)
	if len(ups.Upstreams) != 1 || ups.Upstreams[0].URL != bin || ups.Upstreams[0].Backend != "default" ||
		ups.Upstreams[0].ExpireAfter != "1h0m0s" || !ups.Upstreams[0].Healthy || ups.Upstreams[0].Requests != 4 {
		t.Fatalf("upstreams: %+v", ups)
	}

	var bs struct {
		Backends []struct {
			Name, DSN string
			SameAs    string `json:"same_as"`
			Entries   int64
			MaxBytes  int64 `json:"max_bytes"`
			Healthy   bool
			CanVacuum bool `json:"can_vacuum"`
		}
	}
	c.json("GET", "/api/backends", nil, http.StatusOK, &bs)
	if len(bs.Backends) != 3 {
		t.Fatalf("backends: %+v", bs)
	}
	byName := map[string]int{}
	for i, b := range bs.Backends {
		byName[b.Name] = i
		if !b.Healthy {
			t.Fatalf("backend %s unhealthy", b.Name)
		}
	}
	if d := bs.Backends[byName["default"]]; d.Entries != 2 || !d.CanVacuum || !strings.HasPrefix(d.DSN, "sqlite://") {
		t.Fatalf("default backend: %+v", d)
	}
	if a := bs.Backends[byName["archive"]]; a.MaxBytes != 1<<20 || a.CanVacuum {
		t.Fatalf("archive backend: %+v", a)
	}

	type explanation struct {
		Key      string                         `json:"key"`
		KeyParts []struct{ Part, Value string } `json:"key_parts"`
		Store    bool                           `json:"would_store"`
		Rule     string                         `json:"rule"`
		Reason   string                         `json:"reason"`
		Cached   *struct {
			Answer string `json:"answer"`
			Hits   int64  `json:"hits"`
		} `json:"cached"`
	}
	var x explanation
	c.json("GET", "/api/explain?upstream=bin&url="+url.QueryEscape("/get?n=1"), nil, http.StatusOK, &x)
	if x.Key == "" || !x.Store || x.Reason == "" || len(x.KeyParts) < 3 || x.Cached == nil || x.Cached.Answer != "HIT" {
		t.Fatalf("explain a cached request: %+v", x)
	}
	x = explanation{}
	c.json("GET", "/api/explain?upstream=bin&url=/get%3Fn%3D2&header=Accept:%20text/plain", nil, http.StatusOK, &x)
	if x.Cached != nil || !x.Store {
		t.Fatalf("explain an uncached request: %+v", x)
	}
	x = explanation{}
	c.json("GET", "/api/explain?upstream=bin&url=/anything&method=POST", nil, http.StatusOK, &x)
	if x.Cached != nil {
		t.Fatalf("explain a POST: %+v", x)
	}
	c.wantError("GET", "/api/explain?upstream=nope&url=/get", nil, http.StatusNotFound, "unknown_upstream", "bin")
	c.wantError("GET", "/api/explain?upstream=bin", nil, http.StatusBadRequest, "bad_parameter", "url")
	c.wantError("GET", "/api/explain?upstream=bin&url=https://elsewhere.example/x", nil, http.StatusBadRequest, "bad_url", "elsewhere")
	c.wantError("GET", "/api/explain?upstream=bin&url=/a/..%2F..%2Fb", nil, http.StatusBadRequest, "bad_url")
	c.wantError("GET", "/api/explain?upstream=bin&url=/get&header=nocolon", nil, http.StatusBadRequest, "bad_parameter", "header")

	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	c.json("GET", "/api/openapi.json", nil, http.StatusOK, &doc)
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/api/entries"] == nil {
		t.Fatalf("openapi: %+v", doc)
	}
}

// TestAPIBulkMongo runs the bulk jobs on MongoDB. The in-process FerretDB
// stores through SQLite and takes several milliseconds a write, so the jobs
// are ten times smaller than on SQLite unless a real MongoDB is given with
// CACHEGATE_TEST_MONGODB_URI.
func TestAPIBulkMongo(t *testing.T) {
	perUpstream := int64(1500 / bulkScale)
	if os.Getenv(mongotest.EnvURI) == "" {
		perUpstream /= 10
	}
	testBulk(t, func(tb testing.TB) string { return mongotest.URI(tb) }, perUpstream)
}
