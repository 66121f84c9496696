package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
)

// BenchmarkServeHitExpression measures a hit through Lookup (the fast
// lane's door) on the production default backend, without and with a key
// expression: one that reads only the URL is evaluated once per request
// line and memoized; one that reads a header runs on every request.
func BenchmarkServeHitExpression(b *testing.B) {
	matchTenant := func(p *cache.Policy) { p.MatchHeaders = []string{"X-Tenant"} }
	for _, c := range []struct {
		name, key string
		mut       []func(*cache.Policy)
	}{
		{"none", "", nil},
		// The same key work as key-header, without an expression: the
		// cost of a key that cannot be memoized.
		{"none-match-headers", "", []func(*cache.Policy){matchTenant}},
		{"key-url", `request.url.path + "?" + request.query["id"]`, nil},
		{"key-header", `request.url.path + "|" + request.headers[?"x-tenant"].orValue("")`, nil},
		{"key-header-query", `request.url.path + "?" + request.query["id"] + "|" + request.headers[?"x-tenant"].orValue("")`, nil},
	} {
		b.Run(c.name, func(b *testing.B) {
			cold, err := sqlite.Open("sqlite://" + filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			e, _ := newExprEnvOn(b, c.key, "", tiered.New(cold, 64<<20, time.Second), c.mut...)
			const path = "/b?id=1&x=2"
			e.get(path, "MISS", "X-Tenant", "a", "Accept", "*/*", "User-Agent", "bench")
			req := httptest.NewRequest("GET", "/fetch/up"+path, nil)
			req.Header = http.Header{"X-Tenant": {"a"}, "Accept": {"*/*"}, "User-Agent": {"bench"}}
			hitLoop(b, e.gw, req, "Lookup")
		})
	}
}
