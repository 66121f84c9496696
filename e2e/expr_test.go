package e2e_test

import (
	"testing"

	"github.com/cachegate/cachegate/gateway/expr"
	"github.com/cachegate/cachegate/web"
)

// A key and a filter expression, configured as the server takes them,
// through the listener and both lanes: two URLs share an entry by id, and
// a debugging request is answered but never stored.
func TestKeyAndFilterExpressions(t *testing.T) {
	bin := startHTTPBin(t)
	u := upstream("bin", bin)
	var err error
	if u.KeyExpr, err = expr.CompileKey(`request.url.path + "?" + request.query[?"id"].orValue("")`); err != nil {
		t.Fatal(err)
	}
	if u.FilterExpr, err = expr.CompileFilter(`response.status == 200 && !("x-debug" in request.headers)`); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{u}})
	base := srv.URL() + "/fetch/bin"
	wantCache(t, get(t, base+"/get?id=1&x=2"), "MISS")
	wantCache(t, get(t, base+"/get?id=1&x=3"), "HIT")
	wantCache(t, get(t, base+"/get?x=3&id=1"), "HIT")
	wantCache(t, get(t, base+"/get?id=2&x=3"), "MISS")

	wantCache(t, get(t, base+"/anything/d", "X-Debug", "1"), "MISS")
	wantCache(t, get(t, base+"/anything/d"), "MISS")
	wantCache(t, get(t, base+"/anything/d"), "HIT")
	wantCache(t, get(t, base+"/anything/d", "X-Debug", "1"), "HIT") // the filter decides storing, not serving
}
