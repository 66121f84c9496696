package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
