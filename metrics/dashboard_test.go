package metrics_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
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
