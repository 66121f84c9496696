// Package e2e holds black-box tests: a real web.Server on a free port, a
// real upstream over HTTP, real backends on disk.
package e2e_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// startHTTPBin runs go-httpbin, the upstream requests-cache's docs use.
func startHTTPBin(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(httpbin.New().Handler())
	t.Cleanup(s.Close)
	return s.URL
}

// startServer opens and serves a cachegate for cfg (Listen defaults to a
// free loopback port) and stops it at the end of the test.
func startServer(t testing.TB, cfg web.Config) *web.Server {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.ExpireAfter == 0 {
		cfg.ExpireAfter = cache.Expiry(time.Hour)
	}
	srv, err := web.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	t.Cleanup(stop)
	return srv
}

func stopServer(t testing.TB, srv *web.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func get(t testing.TB, url string, header ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func wantCache(t testing.TB, a answer, want string) {
	t.Helper()
	if got := a.header.Get("X-Cache"); got != want {
		t.Fatalf("X-Cache = %q, want %q (status %d, Cache-Status %q)", got, want, a.status, a.header.Get("Cache-Status"))
	}
}

func sqliteDSN(t testing.TB) string {
	return "sqlite://" + filepath.Join(t.TempDir(), "nested", "dir", "cache.db")
}

func upstream(name, url string) web.UpstreamConfig {
	return web.UpstreamConfig{Name: name, URL: url, Policy: cache.DefaultPolicy(cache.Expiry(time.Hour))}
}

func TestSQLiteCacheSurvivesRestart(t *testing.T) {
	bin := startHTTPBin(t)
	cfg := web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("bin", bin)}}

	srv := startServer(t, cfg)
	first := get(t, srv.URL()+"/fetch/bin/get?x=1")
	wantCache(t, first, "MISS")
	wantCache(t, get(t, srv.URL()+"/fetch/bin/get?x=1"), "HIT")
	stopServer(t, srv)

	srv = startServer(t, cfg)
	again := get(t, srv.URL()+"/fetch/bin/get?x=1")
	wantCache(t, again, "HIT")
	if again.body != first.body {
		t.Fatal("the body changed across the restart")
	}
}

// TestDemoUpstream is the README's quick start: MISS, then HIT, and still
// a HIT after a restart (the demo httpbin gets a new port each time; its
// cache keys must not).
func TestDemoUpstream(t *testing.T) {
	cfg := web.Config{Backend: sqliteDSN(t), Demo: true}
	srv := startServer(t, cfg)
	wantCache(t, get(t, srv.URL()+"/fetch/demo/get"), "MISS")
	wantCache(t, get(t, srv.URL()+"/fetch/demo/get"), "HIT")
	stopServer(t, srv)
	srv = startServer(t, cfg)
	wantCache(t, get(t, srv.URL()+"/fetch/demo/get"), "HIT")
	wantCache(t, get(t, srv.URL()+"/fetch/demo/headers"), "MISS")
}

func TestHealthzAndReadyz(t *testing.T) {
	srv := startServer(t, web.Config{Backend: sqliteDSN(t)})
	for _, path := range []string{"/healthz", "/readyz"} {
		if a := get(t, srv.URL()+path); a.status != 200 {
			t.Fatalf("%s: %d %s", path, a.status, a.body)
		}
	}
}

func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "finished")
	}))
	t.Cleanup(slow.Close)
	srv, err := web.Open(context.Background(), web.Config{Listen: "127.0.0.1:0", Backend: sqliteDSN(t), ExpireAfter: cache.Expiry(time.Hour),
		Upstreams: []web.UpstreamConfig{upstream("slow", slow.URL)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	got := make(chan answer, 1)
	go func() { got <- get(t, srv.URL()+"/fetch/slow/once") }()
	<-arrived // the request is in flight
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		closed <- srv.Close(ctx)
	}()
	// The shutdown has begun once the listener refuses new connections;
	// only then may the upstream answer.
	addr := strings.TrimPrefix(srv.URL(), "http://")
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	a := <-got
	if a.status != 200 || a.body != "finished" {
		t.Fatalf("in-flight request got %d %q, want 200 \"finished\"", a.status, a.body)
	}
}

func TestAdminRefusedOffLoopbackWithoutToken(t *testing.T) {
	srv := startServer(t, web.Config{Listen: "0.0.0.0:0", Backend: "memory://"})
	a := get(t, srv.URL()+"/api/stats")
	if a.status != http.StatusForbidden {
		t.Fatalf("admin API without token off loopback: %d %s", a.status, a.body)
	}
}

func TestProfilerAndMetricsAreBehindTheAdminToken(t *testing.T) {
	srv := startServer(t, web.Config{Backend: "memory://", AdminToken: "s3cret"})
	for _, path := range []string{"/debug/pprof/", "/metrics"} {
		if a := get(t, srv.URL()+path); a.status != http.StatusUnauthorized {
			t.Fatalf("%s without token: %d", path, a.status)
		}
		if a := get(t, srv.URL()+path, "Authorization", "Bearer s3cret"); a.status != http.StatusOK {
			t.Fatalf("%s with token: %d", path, a.status)
		}
	}
	if a := get(t, srv.URL()+"/metrics", "Authorization", "Bearer s3cret"); !strings.Contains(a.body, "cachegate_requests_total") && !strings.Contains(a.body, "cachegate_backend_entries") {
		t.Fatalf("/metrics holds no cachegate series: %.500s", a.body)
	}
}

// metrics_listen serves /metrics alone, without the token, for a scraper;
// the main address still guards it.
func TestMetricsListenServesOnlyMetrics(t *testing.T) {
	srv := startServer(t, web.Config{Backend: "memory://", AdminToken: "s3cret", MetricsListen: "127.0.0.1:0"})
	m := srv.MetricsURL()
	if m == "" {
		t.Fatal("no metrics address")
	}
	if a := get(t, m+"/metrics"); a.status != http.StatusOK || !strings.Contains(a.body, "go_goroutines") {
		t.Fatalf("GET /metrics on the metrics address: %d %.200s", a.status, a.body)
	}
	for _, path := range []string{"/api/stats", "/", "/fetch/x/y", "/debug/pprof/"} {
		if a := get(t, m+path); a.status != http.StatusNotFound {
			t.Errorf("GET %s on the metrics address: %d, want 404", path, a.status)
		}
	}
	if a := get(t, srv.URL()+"/metrics"); a.status != http.StatusUnauthorized {
		t.Errorf("GET /metrics on the main address without the token: %d", a.status)
	}
}
