package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
)

// A directory behind the hot tier, as web opens it, has nothing to vacuum:
// /api/backends says so and purge-expired?vacuum=true refuses, while SQLite
// behind the tier still vacuums.
func TestVacuumBehindTheTier(t *testing.T) {
	dir, err := fs.Open("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	backends := map[string]cache.Backend{}
	for name, cold := range map[string]cache.Backend{"default": dir, "db": db} {
		tier := tiered.New(cold, 1<<20, time.Minute)
		t.Cleanup(func() { tier.Close() })
		backends[name] = tier.Served()
	}
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	api := handlers.NewAPI(nil, gw, handlers.Options{Backends: backends})
	t.Cleanup(api.Close)
	router := chi.NewRouter()
	api.Mount(router)
	serve := func(method, target string) (int, []byte) {
		w := httptest.NewRecorder()
		router.ServeHTTP(w, loopbackRequest(method, target, nil))
		return w.Code, w.Body.Bytes()
	}

	code, body := serve(http.MethodGet, "/api/backends")
	var list struct {
		Backends []struct {
			Name      string `json:"name"`
			CanVacuum bool   `json:"can_vacuum"`
		} `json:"backends"`
	}
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/backends: %d %s (%v)", code, body, err)
	}
	want := map[string]bool{"default": false, "db": true}
	for _, b := range list.Backends {
		if b.CanVacuum != want[b.Name] {
			t.Errorf("backend %s: can_vacuum %v, want %v", b.Name, b.CanVacuum, want[b.Name])
		}
		delete(want, b.Name)
	}
	if len(want) != 0 {
		t.Errorf("backends missing from the list: %v", want)
	}

	w := httptest.NewRecorder()
	router.ServeHTTP(w, loopbackRequest(http.MethodPost, "/api/purge-expired?vacuum=true", nil))
	wantGuardError(t, w, http.StatusBadRequest, "cannot_vacuum")

	code, body = serve(http.MethodPost, "/api/purge-expired?backend=db&vacuum=true")
	var purged struct {
		Vacuumed bool `json:"vacuumed"`
	}
	if err := json.Unmarshal(body, &purged); code != http.StatusOK || err != nil || !purged.Vacuumed {
		t.Fatalf("purge-expired?backend=db&vacuum=true: %d %s, want 200 with vacuumed true", code, body)
	}
}
