package metrics_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/metrics"
)

// Every series the Grafana dashboard in deploy/ queries is one /metrics
// exposes: a renamed series must not leave an empty panel behind.
func TestDashboardQueriesExistingSeries(t *testing.T) {
	raw, err := os.ReadFile("../deploy/grafana/dashboards/cachegate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	e := newEnv(t)
	e.fetch(t, "/a", "MISS")
	e.fetch(t, "/a", "HIT")
	body, _ := e.scrape(t)
	// And a backend behind a hot tier that writes behind, for the series
	// only such a backend has.
	body += tieredScrape(t)
	series := regexp.MustCompile(`cachegate_[a-z_]+`)
	if len(dash.Panels) == 0 {
		t.Fatal("the dashboard has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, target := range p.Targets {
			for _, name := range series.FindAllString(target.Expr, -1) {
				if !strings.Contains(body, "\n"+name+"{") && !strings.Contains(body, "\n"+name+" ") {
					t.Errorf("panel %q queries %s, which /metrics does not expose", p.Title, name)
				}
			}
		}
	}
}

// tieredScrape returns /metrics of a gateway whose backend is a hot tier
// writing behind to a memory backend, after one write went through.
func tieredScrape(t *testing.T) string {
	t.Helper()
	tier := tiered.New(memory.New(0), 1<<20, time.Minute).WriteBehind(tiered.WriteBehindOptions{Window: time.Hour})
	t.Cleanup(func() { tier.Close() })
	served := tier.Served()
	if err := served.Put(context.Background(), cachetest.NewEntry("k")); err != nil {
		t.Fatal(err)
	}
	tier.Flush(context.Background())
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{Name: "x", URL: &url.URL{Scheme: "http", Host: "x.invalid"},
		Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)), Backend: served, BackendName: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	e := &env{gw: gw, metrics: metrics.Handler(metrics.Options{Gateway: gw, Backends: map[string]cache.Backend{"default": served}})}
	body, _ := e.scrape(t)
	return body
}
