package e2e_test

// Tests of the admin API (/api/...) over real HTTP against a running
// server, a real upstream and real backends.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
// an io.Reader.
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
		{"freshness", "freshness=stale", "bad_parameter", []string{"fresh, expired"}},
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

var (
	_ = bufio.NewScanner
	_ = httptest.NewServer
	_ sync.Mutex
	_ atomic.Int64
)
