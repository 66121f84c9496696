package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

func TestMissThenHit(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	first := e.get("/get?a=1", "MISS")
	second := e.get("/get?a=1", "HIT")
	if first.body != second.body {
		t.Fatalf("HIT body differs from MISS body:\n%s\n%s", first.body, second.body)
	}
	if !strings.HasPrefix(second.header.Get("Cache-Status"), "cachegate; hit") {
		t.Fatalf("Cache-Status = %q", second.header.Get("Cache-Status"))
	}
	if second.header.Get("Age") == "" {
		t.Fatal("a hit carries no Age")
	}
	if got := first.header.Get("Cache-Status"); !strings.Contains(got, "fwd=uri-miss") || !strings.Contains(got, "stored") {
		t.Fatalf("MISS Cache-Status = %q", got)
	}
	v := e.gw.Stats().Snapshot().Upstreams["up"]
	if v.Hits != 1 || v.Misses != 1 || v.Requests != 2 {
		t.Fatalf("stats = %+v, want 1 hit, 1 miss, 2 requests", v)
	}
}

func TestQueryOrderAndHostCaseShareAKey(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	e.get("/get?b=2&a=1", "MISS")
	e.get("/get?a=1&b=2", "HIT")
	e.get("/get?a=1&b=3", "MISS")
}

func TestUnknownUpstreamNamesConfigured(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	resp, err := http.Get(e.srv.URL + "/fetch/nope/get")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 404 || body.Code != "unknown_upstream" || !strings.Contains(body.Error, "up") {
		t.Fatalf("got %d %+v", resp.StatusCode, body)
	}
}

func TestPathCannotClimbOut(t *testing.T) {
	up := &counting{h: httpbinHandler()}
	e := newEnv(t, policy(), up, nil)
	for _, p := range []string{"/../secret", "/a/%2e%2e/b", "/%2E%2E%2Fetc", "/a/..%2f..%2fx", "/./x", "/a\\..\\b"} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/fetch/up"+p, nil)
		req.URL.Opaque = "//" + req.URL.Host + "/fetch/up" + p // send the path exactly as written
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", p, resp.StatusCode)
		}
	}
	if n := up.n.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests, want 0", n)
	}
}

func TestIgnoredParametersAreRedactedAndLeftOutOfTheKey(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.IgnoredParameters = []string{"access_token"} }), nil, nil)
	e.get("/get?access_token=s3cret&x=1", "MISS")
	e.get("/get?x=1&access_token=other", "HIT")
	for _, en := range e.entries() {
		if strings.Contains(en.URL, "s3cret") || !strings.Contains(en.URL, "access_token=REDACTED") {
			t.Fatalf("stored URL %q: want the token redacted", en.URL)
		}
	}
}

// A server may split its query on ';' too: an ignored parameter after one
// is redacted and keyed like any other, and the parameters around it stay
// in the key.
func TestIgnoredParametersAfterASemicolon(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.IgnoredParameters = []string{"access_token"} }), nil, nil)
	e.get("/get?x=1;access_token=s3cret", "MISS")
	e.get("/get?x=1;access_token=other", "HIT")
	e.get("/get?access_token=s3cret;x=2", "MISS")
	e.get("/get?access_token=other;x=2", "HIT")
	for _, en := range e.entries() {
		if strings.Contains(en.URL, "s3cret") || !strings.Contains(en.URL, "access_token=REDACTED") {
			t.Fatalf("stored URL %q: want the token redacted", en.URL)
		}
	}
}

func TestExpiryPrecedence(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("cc"); v != "" {
			w.Header().Set("Cache-Control", v)
		}
		fmt.Fprint(w, "ok")
	})
	rules := []cache.URLRule{
		{Pattern: "/static/*", Expire: cache.NeverExpire},
		{Pattern: "*/nocache*", Expire: cache.DoNotCache},
	}
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.CacheControl = true
		p.ExpireAfter = cache.Expiry(10 * time.Minute)
		p.URLsExpireAfter = rules
		p.ClientOverrides = true
	}), upstream, nil)
	now := e.clock.Now()
	cases := []struct {
		name, path string
		header     []string
		want       time.Duration // 0: never, -1: not stored
		rule       string
	}{
		// requests-cache's order, one pair at a time: the response's
		// headers, the request's Cache-Control, the per-request header,
		// the URL patterns, expire_after.
		{"response headers beat the request's Cache-Control", "/x1?cc=max-age=60", []string{"Cache-Control", "max-age=5"}, time.Minute, "the upstream's Cache-Control"},
		{"the request's Cache-Control beats the per-request header", "/x2", []string{"Cache-Control", "max-age=20", cache.ExpireAfterHeader, "30s"}, 20 * time.Second, "the request's Cache-Control"},
		{"the per-request header beats a pattern", "/static/a", []string{cache.ExpireAfterHeader, "30s"}, 30 * time.Second, "the request's X-Cachegate-Expire-After"},
		{"response headers beat a pattern", "/static/b?cc=max-age=60", nil, time.Minute, "the upstream's Cache-Control"},
		{"a pattern beats expire_after", "/static/c", nil, 0, "urls_expire_after"},
		// and the pairs further apart.
		{"response headers beat the per-request header", "/x3?cc=max-age=60", []string{cache.ExpireAfterHeader, "30s"}, time.Minute, "the upstream's Cache-Control"},
		{"the request's Cache-Control beats a pattern", "/static/d", []string{"Cache-Control", "max-age=20"}, 20 * time.Second, "the request's Cache-Control"},
		{"the request's Cache-Control beats expire_after", "/x4", []string{"Cache-Control", "max-age=20"}, 20 * time.Second, "the request's Cache-Control"},
		{"the per-request header beats expire_after", "/x5", []string{cache.ExpireAfterHeader, "30s"}, 30 * time.Second, "the request's X-Cachegate-Expire-After"},
		{"do_not_cache pattern", "/nocache/c", nil, -1, "urls_expire_after"},
		{"cache-control max-age", "/x?cc=max-age=60", nil, time.Minute, "the upstream's Cache-Control"},
		{"expire_after default", "/y", nil, 10 * time.Minute, "expire_after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.get(tc.path, "MISS", tc.header...)
			var found *cache.Entry
			for _, en := range e.entries() {
				if strings.HasSuffix(en.URL, strings.ReplaceAll(tc.path, "=max-age=", "=max-age%3D")) || strings.Contains(en.URL, tc.path) {
					found = en
				}
			}
			if tc.want < 0 {
				if found != nil || strings.Contains(r.header.Get("Cache-Status"), "stored") {
					t.Fatalf("stored, want not stored (Cache-Status %q)", r.header.Get("Cache-Status"))
				}
				return
			}
			if found == nil {
				t.Fatalf("not stored (Cache-Status %q)", r.header.Get("Cache-Status"))
			}
			if !strings.HasPrefix(found.Reason, tc.rule) {
				t.Errorf("reason %q, want it to credit %q", found.Reason, tc.rule)
			}
			if tc.want == 0 {
				if !found.Never() {
					t.Fatalf("expires %v, want never", found.Expires)
				}
			} else if got := found.Expires.Sub(now); got < tc.want-time.Second || got > tc.want+time.Second {
				t.Fatalf("expires in %v, want %v (reason %q)", got, tc.want, found.Reason)
			}
		})
	}
}

func TestNoStoreResponseIsNotStored(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.CacheControl = true }), nil, nil)
	e.get("/response-headers?Cache-Control=no-store", "MISS")
	e.get("/response-headers?Cache-Control=no-store", "MISS")
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored, want 0", n)
	}
}

func TestRevalidationWithETag(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.ExpireAfter = cache.Expiry(time.Minute) }), nil, nil)
	first := e.get("/etag/abc", "MISS")
	e.clock.Advance(2 * time.Minute)
	second := e.get("/etag/abc", "REVALIDATED")
	if first.body != second.body {
		t.Fatal("the revalidated body differs")
	}
	// The 304 gave the entry a new lifetime.
	e.get("/etag/abc", "HIT")
}

func TestAlwaysRevalidate(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.AlwaysRevalidate = true }), nil, nil)
	e.get("/etag/xyz", "MISS")
	e.get("/etag/xyz", "REVALIDATED")
	// Without a validator the entry is used while fresh.
	e.get("/get", "MISS")
	e.get("/get", "HIT")
}

func TestClientDirectives(t *testing.T) {
	e := newEnv(t, policy(overrides), nil, nil)
	t.Run("only-if-cached on a miss is 504", func(t *testing.T) {
		r := e.do("GET", "/get?oic", "Cache-Control", "only-if-cached")
		if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "not_cached") {
			t.Fatalf("got %d %s", r.status, r.body)
		}
	})
	e.get("/get?d", "MISS")
	t.Run("only-if-cached on a hit", func(t *testing.T) { e.get("/get?d", "HIT", "Cache-Control", "only-if-cached") })
	t.Run("no-store bypasses", func(t *testing.T) { e.get("/get?d", "BYPASS", "Cache-Control", "no-store") })
	t.Run("no-cache refetches without validator", func(t *testing.T) { e.get("/get?d", "MISS", "Cache-Control", "no-cache") })
	t.Run("max-age=0 refetches", func(t *testing.T) {
		e.clock.Advance(2 * time.Second)
		e.get("/get?d", "MISS", "Cache-Control", "max-age=0")
	})
	t.Run("min-fresh beyond expiry refetches", func(t *testing.T) { e.get("/get?d", "MISS", "Cache-Control", "min-fresh=7200") })
	t.Run("max-stale accepts stale", func(t *testing.T) {
		e.clock.Advance(2 * time.Hour)
		e.get("/get?d", "STALE", "Cache-Control", "max-stale")
		e.get("/get?d", "MISS", "Cache-Control", "max-stale=10")
	})
	t.Run("force refresh", func(t *testing.T) {
		e.get("/get?d", "HIT")
		e.get("/get?d", "MISS", cache.ForceRefreshHeader, "true")
	})
}

// flaky is an upstream that can be told to fail.
type flaky struct {
	mu     sync.Mutex
	fail   bool
	body   string
	calls  atomic.Int64
	header map[string]string
}

func (f *flaky) set(fail bool, body string) {
	f.mu.Lock()
	f.fail, f.body = fail, body
	f.mu.Unlock()
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	f.mu.Lock()
	fail, body := f.fail, f.body
	for k, v := range f.header {
		w.Header().Set(k, v)
	}
	f.mu.Unlock()
	if fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "down")
		return
	}
	fmt.Fprint(w, body)
}

func TestStaleIfError(t *testing.T) {
	up := &flaky{body: "v1"}
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.ExpireAfter = cache.Expiry(time.Minute)
		p.StaleIfError = cache.Staleness{On: true, Max: time.Hour}
	}), up, nil)
	e.get("/x", "MISS")
	up.set(true, "")
	e.clock.Advance(2 * time.Minute)
	r := e.get("/x", "STALE")
	if r.body != "v1" || !strings.Contains(r.header.Get("Cache-Status"), "stale-if-error") {
		t.Fatalf("got %q %q", r.body, r.header.Get("Cache-Status"))
	}
	e.clock.Advance(2 * time.Hour) // beyond the maximum staleness
	if r := e.do("GET", "/x"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("beyond max staleness: got %d %s, want the upstream's 503", r.status, r.xcache())
	}
}

func TestStaleIfErrorWhenUpstreamUnreachable(t *testing.T) {
	up := &flaky{body: "v1"}
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.ExpireAfter = cache.Expiry(time.Minute)
		p.StaleIfError = cache.Staleness{On: true}
	}), up, nil)
	e.get("/x", "MISS")
	e.upstream.Close()
	e.clock.Advance(2 * time.Minute)
	e.get("/x", "STALE")
	r := e.do("GET", "/other")
	var body struct{ Error, Code, Upstream string }
	_ = json.Unmarshal([]byte(r.body), &body)
	if r.status != http.StatusBadGateway || body.Code != "upstream_unreachable" || body.Upstream != "up" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestUpstreamTimeoutIs504(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	r := e.do("GET", "/delay/3")
	if r.status != http.StatusGatewayTimeout || !strings.Contains(r.body, "upstream_timeout") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	up := &flaky{body: "v1"}
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.ExpireAfter = cache.Expiry(time.Minute)
		p.StaleWhileRevalidate = cache.Staleness{On: true}
	}), up, nil)
	e.get("/x", "MISS")
	up.set(false, "v2")
	e.clock.Advance(2 * time.Minute)
	if r := e.get("/x", "STALE"); r.body != "v1" {
		t.Fatalf("stale body %q, want v1", r.body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := e.do("GET", "/x")
		if r.xcache() == "HIT" && r.body == "v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background refresh never landed: %s %q", r.xcache(), r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentMissesMakeOneUpstreamCall(t *testing.T) {
	slow := &counting{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		fmt.Fprint(w, "slow")
	})}
	e := newEnv(t, policy(), slow, nil)
	const n = 50
	var wg sync.WaitGroup
	results := make([]result, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = e.do("GET", "/herd")
		}()
	}
	close(start)
	wg.Wait()
	if got := slow.n.Load(); got != 1 {
		t.Fatalf("upstream calls = %d, want 1", got)
	}
	for i, r := range results {
		if r.status != 200 || r.body != "slow" {
			t.Fatalf("client %d got %d %q", i, r.status, r.body)
		}
	}
}

func TestHeadIsAnsweredFromGet(t *testing.T) {
	up := &counting{h: httpbinHandler()}
	e := newEnv(t, policy(), up, nil)
	e.get("/get?h", "MISS")
	r := e.do("HEAD", "/get?h")
	if r.xcache() != "HIT" || r.body != "" || r.header.Get("Content-Length") == "" {
		t.Fatalf("HEAD: %s body %q length %q", r.xcache(), r.body, r.header.Get("Content-Length"))
	}
	if up.n.Load() != 1 {
		t.Fatalf("upstream calls = %d, want 1", up.n.Load())
	}
	// A HEAD miss fills the cache for the GET.
	if r := e.do("HEAD", "/get?h2"); r.xcache() != "MISS" || r.body != "" {
		t.Fatalf("HEAD miss: %s %q", r.xcache(), r.body)
	}
	e.get("/get?h2", "HIT")
}

func TestLargeBodyStreamsAndIsNotStored(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.MaxBodySize = 1000 }), nil, nil)
	r := e.get("/bytes/5000", "MISS")
	if len(r.body) != 5000 {
		t.Fatalf("body %d bytes, want 5000", len(r.body))
	}
	if !strings.Contains(r.header.Get("Cache-Status"), "too-large") {
		t.Fatalf("Cache-Status %q", r.header.Get("Cache-Status"))
	}
	// Without Content-Length (chunked) too.
	r = e.get("/stream-bytes/5000?chunk_size=100", "MISS")
	if len(r.body) != 5000 {
		t.Fatalf("streamed body %d bytes, want 5000", len(r.body))
	}
	e.get("/bytes/500", "MISS")
	if n := len(e.entries()); n != 1 {
		t.Fatalf("%d entries, want only the small one", n)
	}
}

func TestCutOffBodyIsNeverStored(t *testing.T) {
	cut := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte(strings.Repeat("x", 100)))
		// The handler returns early: the server closes the connection
		// with 900 bytes missing.
	})
	e := newEnv(t, policy(), cut, nil)
	r := e.do("GET", "/cut")
	if r.status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", r.status)
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored from a cut-off body", n)
	}
}

func TestCredentialsNeverCrossOver(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	e.get("/get?c", "MISS", "Authorization", "Bearer alice")
	e.get("/get?c", "HIT", "Authorization", "Bearer alice")
	e.get("/get?c", "MISS", "Authorization", "Bearer bob")
	e.get("/get?c", "MISS")
	for _, en := range e.entries() {
		for _, v := range en.RequestHeader {
			if strings.Contains(strings.Join(v, ""), "alice") {
				t.Fatal("a credential was stored")
			}
		}
	}
}

func TestSetCookieIsNotStored(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	first := e.get("/cookies/set?session=abc", "MISS")
	_ = first
	r := e.get("/response-headers?Set-Cookie=a%3Db", "MISS")
	if r.header.Get("Set-Cookie") == "" {
		t.Fatal("the first client lost its Set-Cookie")
	}
	r = e.get("/response-headers?Set-Cookie=a%3Db", "HIT")
	if r.header.Get("Set-Cookie") != "" {
		t.Fatal("Set-Cookie served from the cache to another client")
	}
}

func TestLocationIsRewrittenToTheGateway(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	r := e.do("GET", "/redirect-to?url=/get&status_code=302")
	if got := r.header.Get("Location"); got != "/fetch/up/get" {
		t.Fatalf("Location %q, want /fetch/up/get", got)
	}
	r = e.do("GET", "/redirect-to?url=https://example.com/&status_code=302")
	if got := r.header.Get("Location"); got != "https://example.com/" {
		t.Fatalf("foreign Location %q rewritten", got)
	}
}

func TestUnsafeMethodsPassThrough(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	r := e.doBody("POST", "/post", strings.NewReader(`{"a":1}`), "Content-Type", "application/json")
	if r.xcache() != "BYPASS" || r.status != 200 || !strings.Contains(r.body, `"a": 1`) {
		t.Fatalf("POST: %s %d %s", r.xcache(), r.status, r.body)
	}
}

func TestPostCachedWhenAllowedKeyedByBody(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.AllowableMethods = []string{"GET", "POST"}
		p.IgnoredParameters = []string{"nonce"}
	}), nil, nil)
	post := func(body, want string) {
		t.Helper()
		r := e.doBody("POST", "/post", strings.NewReader(body), "Content-Type", "application/json")
		if r.xcache() != want {
			t.Fatalf("POST %s: %s, want %s", body, r.xcache(), want)
		}
	}
	post(`{"q":1,"nonce":"a"}`, "MISS")
	post(`{"nonce":"b","q":1}`, "HIT")
	post(`{"q":2}`, "MISS")
}

func TestMatchHeaders(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.MatchHeaders = []string{"Accept-Language"} }), nil, nil)
	e.get("/get?m", "MISS", "Accept-Language", "en")
	e.get("/get?m", "HIT", "Accept-Language", "en")
	e.get("/get?m", "MISS", "Accept-Language", "fr")
}

func TestVaryKeepsSeveralVariants(t *testing.T) {
	for _, mode := range []string{"requests-cache", "rfc9111"} {
		t.Run(mode, func(t *testing.T) {
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Vary", "Accept")
				w.Header().Set("Cache-Control", "max-age=600")
				fmt.Fprint(w, "for "+r.Header.Get("Accept"))
			})
			e := newEnv(t, policy(func(p *cache.Policy) { p.Mode = cache.Mode(mode) }), up, nil)
			e.get("/v", "MISS", "Accept", "text/html")
			e.get("/v", "MISS", "Accept", "application/json")
			if r := e.get("/v", "HIT", "Accept", "text/html"); r.body != "for text/html" {
				t.Fatalf("variant body %q", r.body)
			}
			if r := e.get("/v", "HIT", "Accept", "application/json"); r.body != "for application/json" {
				t.Fatalf("variant body %q", r.body)
			}
		})
	}
}

func TestRFC9111Storage(t *testing.T) {
	e := newEnv(t, policy(rfc), nil, nil)
	cases := []struct {
		name, path string
		stored     bool
	}{
		{"no freshness, no validator", "/response-headers?x=1", false},
		{"max-age", "/response-headers?Cache-Control=max-age%3D60", true},
		{"s-maxage", "/response-headers?Cache-Control=s-maxage%3D60", true},
		{"private", "/response-headers?Cache-Control=private%2C+max-age%3D60", false},
		{"no-store", "/response-headers?Cache-Control=no-store%2C+max-age%3D60", false},
		{"validator only", "/etag/e1", true},
		{"404 with max-age", "/status/404?Cache-Control=max-age%3D60", false}, // httpbin sets no header here: not stored
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", tc.path)
			if got := strings.Contains(r.header.Get("Cache-Status"), "stored"); got != tc.stored {
				t.Fatalf("stored = %v, want %v (Cache-Status %q)", got, tc.stored, r.header.Get("Cache-Status"))
			}
		})
	}
	t.Run("authorization without public is not stored", func(t *testing.T) {
		r := e.do("GET", "/response-headers?Cache-Control=max-age%3D60&a", "Authorization", "Bearer x")
		if strings.Contains(r.header.Get("Cache-Status"), "stored") {
			t.Fatal("stored a response to an authorized request")
		}
		r = e.do("GET", "/response-headers?Cache-Control=public%2C+max-age%3D60&b", "Authorization", "Bearer x")
		if !strings.Contains(r.header.Get("Cache-Status"), "stored") {
			t.Fatal("public response to an authorized request not stored")
		}
	})
	t.Run("validator-only entry is revalidated on every use", func(t *testing.T) {
		e.get("/etag/e1", "REVALIDATED")
	})
}

func TestRFC9111MustRevalidateForbidsStale(t *testing.T) {
	up := &flaky{body: "v1", header: map[string]string{"Cache-Control": "max-age=60, must-revalidate"}}
	e := newEnv(t, policy(rfc, func(p *cache.Policy) { p.StaleIfError = cache.Staleness{On: true} }), up, nil)
	e.get("/m", "MISS")
	up.set(true, "")
	e.clock.Advance(2 * time.Minute)
	if r := e.do("GET", "/m", "Cache-Control", "max-stale"); r.xcache() == "STALE" {
		t.Fatal("served stale despite must-revalidate")
	}
}

// stale_if_error never serves an entry its response forbids serving
// unvalidated, in either mode: no-cache (a max-age beside it changes
// nothing), must-revalidate, proxy-revalidate and s-maxage.
func TestStaleIfErrorRespectsTheResponseDirectives(t *testing.T) {
	for _, mode := range []struct {
		name string
		set  func(*cache.Policy)
	}{
		{"rfc9111", rfc},
		{"requests-cache", func(p *cache.Policy) { p.CacheControl = true }},
	} {
		for _, cc := range []string{"max-age=2, no-cache", "max-age=2, must-revalidate", "max-age=2, proxy-revalidate", "max-age=2, s-maxage=2"} {
			t.Run(mode.name+"/"+cc, func(t *testing.T) {
				up := &flaky{body: "v1", header: map[string]string{"Cache-Control": cc, "ETag": `"v1"`}}
				e := newEnv(t, policy(mode.set, func(p *cache.Policy) {
					p.StaleIfError = cache.Staleness{On: true}
					p.StaleWhileRevalidate = cache.Staleness{On: true}
				}), up, nil)
				e.get("/s", "MISS")
				up.set(true, "")
				e.clock.Advance(time.Minute)
				r := e.do("GET", "/s")
				if r.xcache() == "STALE" || r.status == http.StatusOK {
					t.Fatalf("%q served %d %s (%s) when the upstream failed", cc, r.status, r.xcache(), r.header.Get("Cache-Status"))
				}
			})
		}
	}
	// Without those directives the same entry is served stale.
	up := &flaky{body: "v1", header: map[string]string{"Cache-Control": "max-age=2"}}
	e := newEnv(t, policy(rfc, func(p *cache.Policy) { p.StaleIfError = cache.Staleness{On: true} }), up, nil)
	e.get("/s", "MISS")
	up.set(true, "")
	e.clock.Advance(time.Minute)
	e.get("/s", "STALE")
}

func TestRFC9111UnsafeMethodInvalidates(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, r.Method)
	})
	e := newEnv(t, policy(rfc), up, nil)
	e.get("/item", "MISS")
	e.get("/item", "HIT")
	if r := e.do("POST", "/item"); r.xcache() != "BYPASS" {
		t.Fatalf("POST: %s", r.xcache())
	}
	e.get("/item", "MISS")
}

func TestRFC9111AgeReducesFreshness(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=100")
		w.Header().Set("Age", "90")
		fmt.Fprint(w, "aged")
	})
	e := newEnv(t, policy(rfc), up, nil)
	e.get("/aged", "MISS")
	e.clock.Advance(5 * time.Second)
	r := e.get("/aged", "HIT")
	if age := r.header.Get("Age"); age != "95" {
		t.Fatalf("Age %s, want 95", age)
	}
	e.clock.Advance(10 * time.Second)
	e.get("/aged", "MISS")
}

func TestClientConditionalAnsweredFromCache(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	r := e.get("/etag/tag1", "MISS")
	etag := r.header.Get("ETag")
	r = e.do("GET", "/etag/tag1", "If-None-Match", etag)
	if r.status != http.StatusNotModified || r.xcache() != "HIT" {
		t.Fatalf("got %d %s, want 304 HIT", r.status, r.xcache())
	}
	r = e.do("GET", "/etag/tag1", "Range", "bytes=0-9")
	if r.status != http.StatusPartialContent || len(r.body) != 10 {
		t.Fatalf("range: %d, %d bytes", r.status, len(r.body))
	}
}

func TestBadExpireAfterHeaderIs400(t *testing.T) {
	e := newEnv(t, policy(overrides), nil, nil)
	r := e.do("GET", "/get", cache.ExpireAfterHeader, "soon")
	if r.status != 400 || !strings.Contains(r.body, cache.ExpireAfterHeader) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestRFC9111StoresAnyFinalStatusWithFreshness(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusNotFound)
	})
	rfcEnv := newEnv(t, policy(func(p *cache.Policy) { p.Mode = cache.ModeRFC9111 }), up, nil)
	rfcEnv.get("/missing", "MISS")
	rfcEnv.get("/missing", "HIT")
	// requests-cache mode keeps its default allowable_codes [200].
	rcEnv := newEnv(t, policy(func(p *cache.Policy) { p.CacheControl = true }), up, nil)
	rcEnv.get("/missing", "MISS")
	rcEnv.get("/missing", "MISS")
}

func TestDateIsAddedWhenMissing(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil // net/http adds none when told so
		fmt.Fprint(w, "undated")
	})
	e := newEnv(t, policy(), up, nil)
	e.get("/d", "MISS")
	if d := e.entries()[0].Header.Get("Date"); d == "" {
		t.Fatal("stored without a Date")
	}
}

func TestRFC9111PostAlwaysPassesThroughAndInvalidates(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, r.Method)
	})
	e := newEnv(t, policy(rfc, func(p *cache.Policy) { p.AllowableMethods = []string{"GET", "HEAD", "POST"} }), up, nil)
	e.get("/item", "MISS")
	if r := e.doBody("POST", "/item", strings.NewReader("x")); r.xcache() != "BYPASS" {
		t.Fatalf("POST in rfc9111 mode: %s", r.xcache())
	}
	e.get("/item", "MISS")
}

func TestInterimResponsesAreRelayedNotStored(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "final")
	})
	e := newEnv(t, policy(), up, nil)
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.srv.URL+"/fetch/up/hints", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(got) != 1 || got[0] != http.StatusEarlyHints {
		t.Fatalf("interim responses %v, want [103]", got)
	}
	if resp.Header.Get("Link") != "" {
		t.Fatal("the interim Link header leaked into the final response")
	}
	if r := e.get("/hints", "HIT"); r.body != "final" || r.header.Get("Link") != "" {
		t.Fatalf("stored answer: %q link %q", r.body, r.header.Get("Link"))
	}
}
