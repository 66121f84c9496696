package cache_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Every reason Decide writes for a stored response starts with the
// ReasonPrefix of exactly one step of ExpiryRules, the one that decided:
// the Upstreams page counts entries by those prefixes.
func TestExpiryRulesPrefixReasons(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	day := cache.Expiry(24 * time.Hour)
	never := cache.NeverExpire
	cases := []struct {
		name     string
		mode     cache.Mode
		cc       bool
		override *cache.Expiry
		path     string
		header   []string
		want     string // the winning step's Rule and Pattern
	}{
		{"fallback", cache.ModeRequestsCache, false, nil, "/other", nil, "expire_after"},
		{"first url rule", cache.ModeRequestsCache, false, nil, "/repos/x", nil, "urls_expire_after /repos/*"},
		{"second url rule", cache.ModeRequestsCache, false, nil, "/users/x", nil, "urls_expire_after /users"},
		{"url rule never", cache.ModeRequestsCache, false, nil, "/static/a", nil, `urls_expire_after /static/*`},
		{"override beats url rules", cache.ModeRequestsCache, false, &day, "/repos/x", nil, "request " + cache.ExpireAfterHeader},
		{"override never", cache.ModeRequestsCache, false, &never, "/x", nil, "request " + cache.ExpireAfterHeader},
		{"max-age", cache.ModeRequestsCache, true, nil, "/other", []string{"Cache-Control", "max-age=60"}, "cache_control"},
		{"immutable", cache.ModeRequestsCache, true, nil, "/other", []string{"Cache-Control", "immutable"}, "cache_control"},
		{"expires header", cache.ModeRequestsCache, true, nil, "/other", []string{"Expires", now.Add(time.Hour).Format(http.TimeFormat)}, "cache_control"},
		{"cache_control without headers falls back", cache.ModeRequestsCache, true, nil, "/other", nil, "expire_after"},
		{"set-cookie suffix keeps the prefix", cache.ModeRequestsCache, false, nil, "/other", []string{"Set-Cookie", "a=b"}, "expire_after"},
		{"rfc s-maxage", cache.ModeRFC9111, true, nil, "/x", []string{"Cache-Control", "s-maxage=5, max-age=9"}, "Cache-Control: s-maxage"},
		{"rfc max-age", cache.ModeRFC9111, true, nil, "/x", []string{"Cache-Control", "max-age=9"}, "Cache-Control: max-age"},
		{"rfc expires", cache.ModeRFC9111, true, nil, "/x", []string{"Expires", now.Add(time.Hour).Format(http.TimeFormat)}, "Expires"},
		{"rfc heuristic", cache.ModeRFC9111, true, nil, "/x", []string{"Last-Modified", now.Add(-10 * time.Hour).Format(http.TimeFormat)}, "heuristic freshness"},
		{"rfc validator only", cache.ModeRFC9111, true, nil, "/x", []string{"Etag", `"v"`}, "no freshness information"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := cache.DefaultPolicy(cache.Expiry(time.Hour))
			p.Mode, p.CacheControl = c.mode, c.cc
			p.URLsExpireAfter = []cache.URLRule{
				{Pattern: "/repos/*", Expire: cache.Expiry(time.Minute)},
				{Pattern: "/users", Expire: cache.Expiry(2 * time.Minute)},
				{Pattern: "/static/*", Expire: cache.NeverExpire},
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			for i := 0; i+1 < len(c.header); i += 2 {
				h.Add(c.header[i], c.header[i+1])
			}
			req := cache.Request{Method: "GET", URL: "api.example" + c.path, Path: c.path, Header: http.Header{}, ExpireAfter: c.override}
			d := p.Decide(req, cache.Response{Status: 200, Header: h, RequestTime: now, ResponseTime: now, Size: 1})
			if !d.Store {
				t.Fatalf("not stored: %s", d.Reason)
			}
			var won []string
			for _, r := range p.ExpiryRules() {
				if strings.HasPrefix(d.Reason, r.ReasonPrefix) {
					won = append(won, strings.TrimSpace(r.Rule+" "+r.Pattern))
				}
			}
			if len(won) != 1 || won[0] != c.want {
				t.Fatalf("reason %q is prefixed by steps %v, want only %q", d.Reason, won, c.want)
			}
		})
	}
}

// The chain lists the rules in the order Decide tries them.
func TestExpiryRulesOrder(t *testing.T) {
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.CacheControl = true
	p.URLsExpireAfter = []cache.URLRule{{Pattern: "b*", Expire: 1}, {Pattern: "a*", Expire: 2}}
	var got []string
	for _, r := range p.ExpiryRules() {
		got = append(got, strings.TrimSpace(r.Rule+" "+r.Pattern))
	}
	want := "cache_control,request Cache-Control: max-age,request " + cache.ExpireAfterHeader + ",urls_expire_after b*,urls_expire_after a*,expire_after"
	if strings.Join(got, ",") != want {
		t.Fatalf("chain %v, want %s", got, want)
	}
}
