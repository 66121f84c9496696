package gateway_test

import (
	"net/http"
	"testing"

	"github.com/cachegate/cachegate/cache"
)

// Content-Location names the representation the upstream sent; the
// gateway stores it and hands it on unchanged, on the miss and on every
// hit, while a Location into the upstream still points at the gateway so
// redirected clients stay behind the cache.
func TestContentLocationUnchangedLocationRewritten(t *testing.T) {
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Location", "http://"+r.Host+"/doc.en.html")
		w.Header().Set("Location", "http://"+r.Host+"/next?page=2")
		w.Write([]byte("doc"))
	})
	for _, mode := range []struct {
		name string
		mut  []func(*cache.Policy)
	}{{"requests-cache", nil}, {"rfc9111", []func(*cache.Policy){rfc}}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t, policy(mode.mut...), up, nil)
			for _, want := range []string{"MISS", "HIT"} {
				r := e.get("/doc", want)
				if got, wantCL := r.header.Get("Content-Location"), e.upstream.URL+"/doc.en.html"; got != wantCL {
					t.Errorf("%s: Content-Location %q, want the upstream's %q", want, got, wantCL)
				}
				if got := r.header.Get("Location"); got != "/fetch/up/next?page=2" {
					t.Errorf("%s: Location %q, want it mapped onto the gateway: /fetch/up/next?page=2", want, got)
				}
			}
		})
	}
}
