package expr_test

import (
	"net/http"
	"testing"

	"github.com/cachegate/cachegate/gateway/expr"
)

// BenchmarkKeyEval measures one evaluation of a key expression, what a
// request pays when its key cannot come from the request-line memo.
func BenchmarkKeyEval(b *testing.B) {
	u := mustURL(b, "https://api.example.com/v1/items?id=1&x=2")
	h := http.Header{"X-Tenant": {"a"}, "Accept": {"*/*"}, "User-Agent": {"bench"}}
	in := &expr.Input{Method: "GET", URL: u, Header: h, Secrets: secretNames{"token"}}
	for _, c := range []struct{ name, src string }{
		{"path", `request.url.path`},
		{"path-query", `request.url.path + "?" + request.query["id"]`},
		{"path-header", `request.url.path + "|" + request.headers[?"x-tenant"].orValue("")`},
	} {
		b.Run(c.name, func(b *testing.B) {
			k, err := expr.CompileKey(c.src)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Eval(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
