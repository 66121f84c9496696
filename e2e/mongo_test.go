package e2e_test

import (
	"net/http"
	"os"
	"testing"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/web"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown()
	os.Exit(code)
}

// TestTwoGatewaysShareOneMongoDB runs two cachegate servers on one MongoDB,
// as a team does when one machine is not enough: what one stores the other
// serves, and what one deletes is gone for the other.
func TestTwoGatewaysShareOneMongoDB(t *testing.T) {
	bin := startHTTPBin(t)
	dsn := mongotest.URI(t)
	cfg := web.Config{Backend: dsn, Upstreams: []web.UpstreamConfig{upstream("bin", bin)}}
	a := startServer(t, cfg)
	b := startServer(t, cfg)

	first := get(t, a.URL()+"/fetch/bin/get?shared=1")
	wantCache(t, first, "MISS")
	second := get(t, b.URL()+"/fetch/bin/get?shared=1")
	wantCache(t, second, "HIT")
	if second.body != first.body {
		t.Fatal("the second gateway served another body")
	}

	// Find the entry through b's admin API and delete it through a's.
	var list struct {
		Entries []struct {
			Key string `json:"key"`
		} `json:"entries"`
	}
	newAPI(t, b).json(http.MethodGet, "/api/entries?url=shared%3D1", nil, http.StatusOK, &list)
	if len(list.Entries) != 1 {
		t.Fatalf("listing through b: %d entries, want 1", len(list.Entries))
	}
	if a := newAPI(t, a).do(http.MethodDelete, "/api/entries/"+list.Entries[0].Key, nil); a.status/100 != 2 {
		t.Fatalf("delete through a: %d %s", a.status, a.body)
	}
	wantCache(t, get(t, b.URL()+"/fetch/bin/get?shared=1"), "MISS")
}
