package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// editable is an upstream whose answer can be changed between requests.
type editable struct {
	status atomic.Int64
	body   atomic.Value // string
	etag   atomic.Value // string
}

func (u *editable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	etag, _ := u.etag.Load().(string)
	if etag != "" {
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if s := u.status.Load(); s != 0 {
		w.WriteHeader(int(s))
	}
	fmt.Fprint(w, u.body.Load())
}

func onlyKey(t *testing.T, e *env) string {
	t.Helper()
	es := e.entries()
	if len(es) != 1 {
		t.Fatalf("%d entries, want 1", len(es))
	}
	return es[0].Key
}

func TestRevalidateOutcomes(t *testing.T) {
	up := &editable{}
	up.body.Store(`{"a":1,"b":2}`)
	up.etag.Store(`"1"`)
	e := newEnv(t, policy(), up, nil)
	ctx := context.Background()
	e.get("/r?token=x", "MISS")
	key := onlyKey(t, e)

	res, err := e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeNotModified || res.Expires == nil {
		t.Fatalf("not modified: %+v, %v", res, err)
	}

	up.etag.Store(`"2"`)
	up.body.Store(`{"a":1,"b":3}`)
	res, err = e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeUpdated || res.Changes == nil {
		t.Fatalf("updated: %+v, %v", res, err)
	}
	if d := res.Changes.BodyDiff; !strings.Contains(d, `-  "b": 2`) || !strings.Contains(d, `+  "b": 3`) {
		t.Fatalf("body diff:\n%s", d)
	}
	if len(res.Changes.Headers) != 1 || res.Changes.Headers[0].Name != "Etag" {
		t.Fatalf("header changes %+v", res.Changes.Headers)
	}
	if r := e.get("/r?token=x", "HIT"); r.body != `{"a":1,"b":3}` {
		t.Fatalf("the update was not stored: %q", r.body)
	}

	up.etag.Store("")
	up.status.Store(http.StatusBadGateway)
	res, err = e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeError || len(e.entries()) != 1 {
		t.Fatalf("error: %+v, %v", res, err)
	}

	up.status.Store(http.StatusGone)
	res, err = e.gw.Revalidate(ctx, e.backend, key)
	if err != nil || res.Outcome != gateway.OutcomeGone || len(e.entries()) != 0 {
		t.Fatalf("gone: %+v, %v (%d entries)", res, err, len(e.entries()))
	}

	if _, err := e.gw.Revalidate(ctx, e.backend, key); !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
}

func TestRevalidateNeverCallsAnotherHost(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	ctx := context.Background()
	now := time.Now()
	evil := &cache.Entry{Key: "evil", BaseKey: "evil", Upstream: "up", Method: "GET", URL: "http://example.com/steal",
		Status: 200, Header: http.Header{}, Body: []byte("x"), Size: 1, Created: now, RequestTime: now}
	if err := e.backend.Put(ctx, evil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.Revalidate(ctx, e.backend, "evil"); err == nil || !strings.Contains(err.Error(), "host") {
		t.Fatalf("revalidating an entry of another host: %v", err)
	}
}

func TestExplain(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.IgnoredParameters = []string{"api_key"}
		p.URLsExpireAfter = []cache.URLRule{{Pattern: "/anything/*", Expire: cache.NeverExpire}}
	}), nil, nil)
	ctx := context.Background()
	x, err := e.gw.Explain(ctx, "up", "/anything/app.js?api_key=secret&v=2", "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.Rule != "urls_expire_after" || !x.Never || !x.Store || x.Cached != nil {
		t.Fatalf("explain before caching: %+v", x)
	}
	if strings.Contains(fmt.Sprint(x), "secret") {
		t.Fatalf("explanation leaks an ignored parameter: %+v", x)
	}
	e.get("/anything/app.js?v=2&api_key=other", "MISS")
	x, err = e.gw.Explain(ctx, "up", "/fetch/up/anything/app.js?v=2", "GET", nil)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cached == nil || x.Cached.Answer != "HIT" || x.Cached.Key != x.Key {
		t.Fatalf("explain after caching: %+v %+v", x, x.Cached)
	}
	x, err = e.gw.Explain(ctx, "up", "/post", "POST", nil)
	if err != nil || x.Cacheable || !strings.Contains(x.NotCacheable, "allowable_methods") {
		t.Fatalf("explain POST: %+v %v", x, err)
	}
	if _, err := e.gw.Explain(ctx, "nope", "/x", "GET", nil); !errors.Is(err, gateway.ErrUnknownUpstream) {
		t.Fatalf("unknown upstream: %v", err)
	}
	if _, err := e.gw.Explain(ctx, "up", "/a/../../etc", "GET", nil); err == nil {
		t.Fatal("explain accepted a path climbing out")
	}
}

// The explanation lays out the expiry rules in the order they are tried
// and marks the one that decided.
func TestExplainRuleChain(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.URLsExpireAfter = []cache.URLRule{
			{Pattern: "/anything/a*", Expire: cache.Expiry(time.Minute)},
			{Pattern: "/anything/*", Expire: cache.NeverExpire},
			{Pattern: "/static/*", Expire: cache.DoNotCache},
		}
	}), nil, nil)
	ctx := context.Background()
	states := func(x gateway.Explanation) string {
		var s []string
		for _, st := range x.Chain {
			s = append(s, strings.TrimSpace(st.Rule+" "+st.Pattern)+"="+st.State)
		}
		return strings.Join(s, ", ")
	}
	cases := []struct {
		url  string
		want string
	}{
		{"/anything/abc", "request Cache-Control: max-age=no_match, request X-Cachegate-Expire-After=no_match, urls_expire_after /anything/a*=won, urls_expire_after /anything/*=also_matches, urls_expire_after /static/*=not_reached, expire_after=not_reached"},
		{"/anything/zzz", "request Cache-Control: max-age=no_match, request X-Cachegate-Expire-After=no_match, urls_expire_after /anything/a*=no_match, urls_expire_after /anything/*=won, urls_expire_after /static/*=not_reached, expire_after=not_reached"},
		{"/static/x", "request Cache-Control: max-age=no_match, request X-Cachegate-Expire-After=no_match, urls_expire_after /anything/a*=no_match, urls_expire_after /anything/*=no_match, urls_expire_after /static/*=won, expire_after=not_reached"},
		{"/other", "request Cache-Control: max-age=no_match, request X-Cachegate-Expire-After=no_match, urls_expire_after /anything/a*=no_match, urls_expire_after /anything/*=no_match, urls_expire_after /static/*=no_match, expire_after=won"},
	}
	for _, c := range cases {
		x, err := e.gw.Explain(ctx, "up", c.url, "GET", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := states(x); got != c.want {
			t.Errorf("%s: chain\n %s\nwant\n %s", c.url, got, c.want)
		}
	}
	// A status the rules refuse decides before any expiry rule.
	x, err := e.gw.Explain(ctx, "up", "/anything/abc", "GET", http.Header{"Cache-Control": {"no-store"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range x.Chain {
		if st.Won || st.State != gateway.StepNotReached {
			t.Fatalf("a request that says no-store: %s", states(x))
		}
	}
}

// ResolveURL maps what an operator pastes onto an upstream: a /fetch/
// path with or without the gateway's address, or the upstream's own URL
// (the longest base wins); anything else names the configured upstreams.
func TestResolveURL(t *testing.T) {
	b := memory.New(1 << 20)
	mk := func(name, base string) gateway.Upstream {
		u, _ := url.Parse(base)
		return gateway.Upstream{Name: name, URL: u, Backend: b, BackendName: "default", Policy: cache.DefaultPolicy(cache.Expiry(time.Hour))}
	}
	gw, err := gateway.New(gateway.Options{}, mk("api", "https://api.example"), mk("v2", "https://api.example/v2/"), mk("other", "http://other.example:8080/base"))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	for _, c := range []struct{ in, name, url string }{
		{"/fetch/v2/items?x=1", "v2", "/fetch/v2/items?x=1"},
		{"http://127.0.0.1:8080/fetch/other/a%20b?q=1", "other", "/fetch/other/a%20b?q=1"},
		{"https://api.example/v2/items", "v2", "https://api.example/v2/items"},
		{"https://api.example/v2", "v2", "https://api.example/v2"},
		{"https://api.example/v22/items", "api", "https://api.example/v22/items"},
		{"https://API.example:443/users", "api", "https://API.example:443/users"},
		{"  http://other.example:8080/base/x  ", "other", "http://other.example:8080/base/x"},
	} {
		name, u, err := gw.ResolveURL(c.in)
		if err != nil || name != c.name || u != c.url {
			t.Errorf("ResolveURL(%q) = %q, %q, %v; want %q, %q", c.in, name, u, err, c.name, c.url)
		}
	}
	for _, in := range []string{"/items", "http://other.example:8080/elsewhere", "https://nowhere.example/x", "/fetch/nope/x", "http://other.example/base/x"} {
		_, _, err := gw.ResolveURL(in)
		if !errors.Is(err, gateway.ErrNoUpstreamMatches) || !strings.Contains(err.Error(), "api (https://api.example") {
			t.Errorf("ResolveURL(%q): %v", in, err)
		}
	}
}
