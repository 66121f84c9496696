package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/gateway/expr"
)

// newExprEnv is newEnv for an upstream with key and filter expressions
// ("" for none), in front of a counted upstream that answers each request
// with its path and query, and a status from ?status=.
func newExprEnv(t testing.TB, key, filter string) (*env, *counting) {
	t.Helper()
	return newExprEnvOn(t, key, filter, testBackend(t))
}

// newExprEnvOn is newExprEnv on the given backend.
func newExprEnvOn(t testing.TB, key, filter string, backend cache.Backend, mut ...func(*cache.Policy)) (*env, *counting) {
	t.Helper()
	up := gateway.Upstream{Name: "up", Policy: policy(mut...), BackendName: "default", Timeout: 2 * time.Second}
	var err error
	if key != "" {
		if up.KeyExpr, err = expr.CompileKey(key); err != nil {
			t.Fatal(err)
		}
	}
	if filter != "" {
		if up.FilterExpr, err = expr.CompileFilter(filter); err != nil {
			t.Fatal(err)
		}
	}
	handler := &counting{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			fmt.Sscan(s, &status)
		}
		if r.URL.Query().Has("etag") {
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.Header().Set("X-Keep", "no")
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		if r.URL.Query().Has("chunked") {
			// No Content-Length: the size is known only once the body is read.
			w.WriteHeader(status)
			w.(http.Flusher).Flush()
		} else {
			w.WriteHeader(status)
		}
		fmt.Fprintf(w, "%s?%s", r.URL.Path, r.URL.RawQuery)
	})}
	us := httptest.NewServer(handler)
	t.Cleanup(us.Close)
	up.URL, _ = url.Parse(us.URL)
	up.Backend = backend
	c := newClock()
	g, err := gateway.New(gateway.Options{Now: c.Now}, up)
	if err != nil {
		t.Fatal(err)
	}
	srv, lane := serveThroughLane(t, g, backend)
	return &env{t: t, gw: g, srv: srv, backend: backend, clock: c, upstream: us, lane: lane}, handler
}

func TestFilterExpression(t *testing.T) {
	e, calls := newExprEnv(t, "", `response.status == 200 && !("x-debug" in request.headers) && response.size >= 3 && response.size < 30`)

	e.get("/a", gateway.Miss)
	e.get("/a", gateway.Hit)

	// The filter refuses: not stored, and Cache-Status names the filter.
	for range 2 {
		r := e.get("/b", gateway.Miss, "X-Debug", "1")
		if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, `detail="filter"`) {
			t.Fatalf("Cache-Status %q, want detail=\"filter\"", cs)
		}
	}
	e.get("/b", gateway.Miss) // the refused response was not stored
	e.get("/b", gateway.Hit)

	// The built-in rules come first: a 404 is refused by allowable_codes,
	// not by the filter.
	if cs := e.get("/c?status=404", gateway.Miss).header.Get("Cache-Status"); strings.Contains(cs, "filter") {
		t.Fatalf("Cache-Status %q: the policy refuses a 404 before the filter runs", cs)
	}

	// response.size without a Content-Length waits for the body.
	e.get("/d?chunked", gateway.Miss)
	e.get("/d?chunked", gateway.Hit)
	long := "/e?chunked&" + strings.Repeat("x", 30)
	e.get(long, gateway.Miss)
	e.get(long, gateway.Miss)
	if got, want := calls.n.Load(), int64(8); got != want {
		t.Fatalf("upstream calls %d, want %d", got, want)
	}
}

// A 304 that refreshes an entry is judged by the filter too, on the
// entry's headers as the 304 updates them: an entry exists only while the
// filter accepts it.
func TestFilterExpressionOnRevalidation(t *testing.T) {
	e, _ := newExprEnv(t, "", `response.headers[?"x-keep"].orValue("yes") == "yes"`)
	e.get("/a?etag", gateway.Miss)
	e.get("/a?etag", gateway.Hit)
	e.clock.Advance(2 * time.Hour)
	e.get("/a?etag", gateway.Revalidated) // says X-Keep: no
	e.get("/a?etag", gateway.Miss)
}

func TestFilterExpressionRuntimeError(t *testing.T) {
	e, _ := newExprEnv(t, "", `request.query["id"] == "1"`)
	e.get("/a?id=1", gateway.Miss)
	e.get("/a?id=1", gateway.Hit)
	// No id: the expression fails, and nothing is stored.
	r := e.get("/a", gateway.Miss)
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, `detail="filter"`) {
		t.Fatalf("Cache-Status %q, want detail=\"filter\"", cs)
	}
	e.get("/a", gateway.Miss)
	x, err := e.gw.Explain(context.Background(), "up", "/a", "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.LastNotStored == nil || x.LastNotStored.Rule != gateway.FilterRule || !strings.Contains(x.LastNotStored.Reason, "failed") {
		t.Fatalf("last_not_stored %+v, want the filter's failure", x.LastNotStored)
	}
}

func TestKeyExpressionSharesEntry(t *testing.T) {
	e, calls := newExprEnv(t, `request.url.path + "?" + request.query["id"]`, "")
	first := e.get("/items?id=1&x=2", gateway.Miss)
	// Another x, the same id: the same entry, what the first fetched.
	if r := e.get("/items?id=1&x=3", gateway.Hit); r.body != first.body {
		t.Fatalf("body %q, want the shared entry's %q", r.body, first.body)
	}
	e.get("/items?x=3&id=1", gateway.Hit)
	e.get("/items?id=2&x=2", gateway.Miss)
	e.get("/other?id=1", gateway.Miss)
	if got, want := calls.n.Load(), int64(3); got != want {
		t.Fatalf("upstream calls %d, want %d", got, want)
	}
	// The method still counts.
	if r := e.do(http.MethodHead, "/items?id=1&x=9"); r.xcache() != gateway.Hit {
		t.Fatalf("HEAD: X-Cache %q, want HIT from the GET entry", r.xcache())
	}
	if n := len(e.entries()); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}

	// A request the expression fails on (no id) keeps the default key.
	e.get("/items?x=1", gateway.Miss)
	e.get("/items?x=1", gateway.Hit)
	e.get("/items?x=2", gateway.Miss)
}

func TestKeyExpressionReadingHeadersIsNotShared(t *testing.T) {
	e, calls := newExprEnv(t, `request.url.path + "|" + request.headers[?"x-tenant"].orValue("none")`, "")
	e.get("/p", gateway.Miss, "X-Tenant", "a")
	e.get("/p", gateway.Hit, "X-Tenant", "a")
	// The same request line with another header value: another key, though
	// a key of the URL alone would be memoized by request line.
	e.get("/p", gateway.Miss, "X-Tenant", "b")
	e.get("/p", gateway.Miss)
	e.get("/p", gateway.Hit, "X-Tenant", "b")
	e.get("/p", gateway.Hit)
	// The query is no part of this key.
	e.get("/p?x=1", gateway.Hit, "X-Tenant", "a")
	if got, want := calls.n.Load(), int64(3); got != want {
		t.Fatalf("upstream calls %d, want %d", got, want)
	}
}

func TestExplainExpressions(t *testing.T) {
	e, _ := newExprEnv(t, `request.url.path + "?" + request.query["id"]`, `response.status == 200 && !("x-debug" in request.headers)`)
	ctx := context.Background()
	x, err := e.gw.Explain(ctx, "up", "/items?id=1&x=2", "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Expressions) != 2 {
		t.Fatalf("expressions %+v, want key and filter", x.Expressions)
	}
	if k := x.Expressions[0]; k.Field != "key" || k.Result != "/items?1" || k.Error != "" {
		t.Errorf("key %+v, want result /items?1", k)
	}
	if f := x.Expressions[1]; f.Field != "filter" || f.Result != true || f.Input == "" {
		t.Errorf("filter %+v, want result true and its input", f)
	}
	if !x.Store {
		t.Errorf("would_store false, want true (%s)", x.Reason)
	}
	var part bool
	for _, p := range x.KeyParts {
		if strings.HasPrefix(p.Part, "key expression") && p.Value == "/items?1" {
			part = true
		}
		if p.Part == "url" {
			t.Errorf("key part url %q: the expression stands in for it", p.Value)
		}
	}
	if !part {
		t.Errorf("key parts %+v, want the expression's", x.KeyParts)
	}

	x, err = e.gw.Explain(ctx, "up", "/items?x=2", "GET", http.Header{"X-Debug": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	if k := x.Expressions[0]; k.Result != nil || !strings.Contains(k.Error, "no such key") {
		t.Errorf("key %+v, want the evaluation error", k)
	}
	if f := x.Expressions[1]; f.Result != false {
		t.Errorf("filter %+v, want false", f)
	}
	if x.Store || x.Rule != gateway.FilterRule {
		t.Errorf("would_store %v rule %q, want false by the filter", x.Store, x.Rule)
	}

	// The key the gateway stores under is the one Explain gives.
	e.get("/items?id=1&x=2", gateway.Miss)
	x, err = e.gw.Explain(ctx, "up", "/items?id=1&x=5", "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cached == nil || x.Cached.Answer != gateway.Hit {
		t.Fatalf("cached %+v, want a HIT on the shared entry", x.Cached)
	}
}

func TestUpstreamsListExpressions(t *testing.T) {
	e, _ := newExprEnv(t, `request.url.path`, `response.status == 200`)
	u := e.gw.Upstreams()[0]
	if u.Key != `request.url.path` || u.Filter != `response.status == 200` {
		t.Fatalf("upstream info key %q filter %q", u.Key, u.Filter)
	}
}

// An expression sees ignored parameters and credentials REDACTED, so what
// it gives (shown by Explain) never holds a secret; credentials still
// count in the key, hashed, as without an expression.
func TestKeyExpressionSeesSecretsRedacted(t *testing.T) {
	e, calls := newExprEnvOn(t, `request.url.path + "?" + request.url.query + "|" + request.headers[?"authorization"].orValue("-")`, "", testBackend(t),
		func(p *cache.Policy) { p.IgnoredParameters = []string{"token"} })
	e.get("/p?token=s3cret&b=1", gateway.Miss)
	e.get("/p?b=1&token=other", gateway.Hit)
	e.get("/p?b=1&token=other", gateway.Miss, "Authorization", "Bearer s3cret")
	e.get("/p?b=1&token=other", gateway.Miss, "Authorization", "Bearer another")
	if got, want := calls.n.Load(), int64(3); got != want {
		t.Fatalf("upstream calls %d, want %d", got, want)
	}
	x, err := e.gw.Explain(context.Background(), "up", "/p?token=s3cret&b=1", "GET", http.Header{"Authorization": {"Bearer s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(x)
	if strings.Contains(string(b), "s3cret") {
		t.Fatalf("explain shows a secret: %s", b)
	}
	if got, want := x.Expressions[0].Result, "/p?b=1&token=REDACTED|REDACTED"; got != want {
		t.Fatalf("key gave %q, want %q", got, want)
	}
}
