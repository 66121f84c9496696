package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// configSource is a Config.Load whose answer the test sets.
type configSource struct {
	mu  sync.Mutex
	cfg web.Config
	err error
}

func (s *configSource) set(cfg web.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg = cfg
}

func (s *configSource) load() (web.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg, s.err
}

func TestReloadKeepsTheDemoAndRefusesRestartOnlySettings(t *testing.T) {
	bin := startHTTPBin(t)
	src := &configSource{}
	cfg := web.Config{Listen: "127.0.0.1:0", Backend: sqliteDSN(t), ExpireAfter: cache.Expiry(time.Hour), Demo: true,
		Upstreams: []web.UpstreamConfig{upstream("bin", bin)}, Load: src.load}
	srv := startServer(t, cfg)
	wantCache(t, get(t, srv.URL()+"/fetch/demo/get"), "MISS")

	next := cfg
	short := upstream("bin", bin)
	short.Policy.ExpireAfter = cache.Expiry(time.Minute)
	next.Upstreams = []web.UpstreamConfig{short}
	src.set(next)
	if err := srv.Reload(); err != nil {
		t.Fatal(err)
	}
	// The demo is the server's, not the file's: it stays, entries and all.
	wantCache(t, get(t, srv.URL()+"/fetch/demo/get"), "HIT")
	a := get(t, srv.URL()+"/fetch/bin/get")
	wantCache(t, a, "MISS")
	if cs := a.header.Get("Cache-Status"); !strings.Contains(cs, "ttl=59") && !strings.Contains(cs, "ttl=60") {
		t.Fatalf("Cache-Status %q, want the reloaded 1m", cs)
	}

	refused := next
	refused.Listen = "127.0.0.1:1"
	refused.Backends = map[string]string{"other": "mongodb://user:hunter2@db.invalid/cache"}
	refused.Upstreams = []web.UpstreamConfig{upstream("bin", bin)}
	src.set(refused)
	err := srv.Reload()
	if err == nil || !strings.Contains(err.Error(), "listen, backends") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("reload error %v, want one naming listen and backends, without the DSN", err)
	}
	var list struct {
		Upstreams []struct {
			Name        string `json:"name"`
			ExpireAfter string `json:"expire_after"`
		} `json:"upstreams"`
		Config gatewayConfigStatus `json:"config"`
	}
	body := get(t, srv.URL()+"/api/upstreams").body
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Upstreams) != 2 || list.Upstreams[0].ExpireAfter != "1m0s" || list.Config.Reloads != 1 ||
		list.Config.ReloadErrors != 1 || !strings.Contains(list.Config.LastError, "listen") || strings.Contains(body, "hunter2") {
		t.Fatalf("/api/upstreams after a refused reload: %s", body)
	}
}

type gatewayConfigStatus struct {
	Reloads      int64  `json:"reloads"`
	ReloadErrors int64  `json:"reload_errors"`
	LastError    string `json:"last_error"`
}

func TestAPIReloadWithoutAConfigSource(t *testing.T) {
	srv := startServer(t, web.Config{Backend: sqliteDSN(t)})
	resp, err := http.Post(srv.URL()+"/api/reload", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct{ Error, Code string }
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusConflict || e.Code != "reload_unavailable" {
		t.Fatalf("POST /api/reload: %d %+v (%v)", resp.StatusCode, e, err)
	}
}
