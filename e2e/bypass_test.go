package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cachegate/cachegate/cache"
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

// A method the router does not know (PURGE, M-SEARCH, any token) reaches
// the gateway: it is forwarded, not stored, and in rfc9111 mode a 2xx
// answer to it invalidates the URL, as for any unsafe method (RFC 9111
// section 4.4).
func TestUnknownMethodsReachTheGateway(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method)
		mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, r.Method)
	}))
	t.Cleanup(up.Close)
	rfc := upstream("up", up.URL)
	rfc.Policy.Mode = cache.ModeRFC9111
	srv := startServer(t, web.Config{Backend: "memory://", Upstreams: []web.UpstreamConfig{rfc}})
	base := srv.URL()
	const path = "/fetch/up/item"
	wantCache(t, get(t, base+path), "MISS")
	wantCache(t, get(t, base+path), "HIT")
	for _, method := range []string{"PURGE", "M-SEARCH"} {
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "BYPASS" || string(body) != method {
			t.Fatalf("%s: %d %q, X-Cache %q; want it forwarded (BYPASS)", method, resp.StatusCode, body, resp.Header.Get("X-Cache"))
		}
		// Invalidated: the next GET goes to the upstream again.
		wantCache(t, get(t, base+path), "MISS")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "GET PURGE GET M-SEARCH GET"; strings.Join(seen, " ") != want {
		t.Errorf("the upstream saw %v, want %s", seen, want)
	}
}
