package e2e_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/web"
)

// The runtime switch (requests-cache's disabled()): an upstream set to
// bypass through the admin API forwards without reading or writing the
// cache, the fast lane included, and shows it in /api/upstreams; its
// entries stay and answer again once it is switched back.
func TestUpstreamBypassSwitch(t *testing.T) {
	bin := startHTTPBin(t)
	srv := startServer(t, web.Config{Backend: "memory://", Upstreams: []web.UpstreamConfig{upstream("bin", bin)}})
	base := srv.URL()
	c := newAPI(t, srv)
	wantCache(t, get(t, base+"/fetch/bin/get?b=1"), "MISS")
	wantCache(t, get(t, base+"/fetch/bin/get?b=1"), "HIT")

	c.json(http.MethodPost, "/api/upstreams/bin/bypass", map[string]any{"bypass": true}, http.StatusOK, nil)
	for range 2 {
		a := get(t, base+"/fetch/bin/get?b=1")
		wantCache(t, a, "BYPASS")
		if !strings.Contains(a.header.Get("Cache-Status"), "bypassed") {
			t.Fatalf("Cache-Status %q does not say why", a.header.Get("Cache-Status"))
		}
	}
	wantCache(t, get(t, base+"/fetch/bin/get?b=2"), "BYPASS") // nothing new is stored
	var ups struct {
		Upstreams []struct {
			Name     string `json:"name"`
			Bypassed bool   `json:"bypassed"`
		} `json:"upstreams"`
	}
	c.json(http.MethodGet, "/api/upstreams", nil, http.StatusOK, &ups)
	if len(ups.Upstreams) != 1 || !ups.Upstreams[0].Bypassed {
		t.Fatalf("/api/upstreams: %+v, want bin bypassed", ups)
	}

	c.json(http.MethodPost, "/api/upstreams/bin/bypass", map[string]any{"bypass": false}, http.StatusOK, nil)
	wantCache(t, get(t, base+"/fetch/bin/get?b=1"), "HIT")
	wantCache(t, get(t, base+"/fetch/bin/get?b=2"), "MISS")

	c.wantError(http.MethodPost, "/api/upstreams/nope/bypass", map[string]any{"bypass": true}, http.StatusNotFound, "unknown_upstream")
	c.wantError(http.MethodPost, "/api/upstreams/bin/bypass", map[string]any{}, http.StatusBadRequest, "bad_body", "bypass")
	c.wantError(http.MethodPost, "/api/upstreams/bin/bypass", map[string]any{"off": true}, http.StatusBadRequest, "bad_body", "bypass")
}
