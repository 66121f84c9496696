package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/gateway/expr"
	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
)

// The admin API lists an upstream's expressions and explains what they
// gave for a request.
func TestAPIExpressions(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	key, err := expr.CompileKey(`request.url.path + "?" + request.query["id"]`)
	if err != nil {
		t.Fatal(err)
	}
	filter, err := expr.CompileFilter(`response.status == 200 && !("x-debug" in request.headers)`)
	if err != nil {
		t.Fatal(err)
	}
	backend := memory.New(0)
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "up", URL: u, Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)), Backend: backend, BackendName: "default",
		KeyExpr: key, FilterExpr: filter,
	})
	if err != nil {
		t.Fatal(err)
	}
	api := handlers.NewAPI(nil, gw, handlers.Options{Backends: map[string]cache.Backend{"default": backend}})
	r := chi.NewRouter()
	api.Mount(r)
	api.MountPages(r)
	srv := httptest.NewServer(r)
	t.Cleanup(func() {
		srv.Close()
		api.Close()
		gw.Close()
		backend.Close()
	})
	getJSON := func(path string, v any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}

	var list struct {
		Upstreams []struct {
			Key struct {
				Expression string `json:"expression"`
			} `json:"key"`
			Filter string `json:"filter"`
		} `json:"upstreams"`
	}
	getJSON("/api/upstreams", &list)
	if got := list.Upstreams[0]; got.Key.Expression != key.String() || got.Filter != filter.String() {
		t.Fatalf("/api/upstreams: key %q filter %q", got.Key.Expression, got.Filter)
	}

	var x struct {
		Expressions []struct {
			Field  string `json:"field"`
			Result any    `json:"result"`
			Error  string `json:"error"`
		} `json:"expressions"`
	}
	getJSON("/api/explain?"+url.Values{"upstream": {"up"}, "url": {"/items?id=7&x=1"}}.Encode(), &x)
	if len(x.Expressions) != 2 || x.Expressions[0].Field != "key" || x.Expressions[0].Result != "/items?7" ||
		x.Expressions[1].Field != "filter" || x.Expressions[1].Result != true {
		t.Fatalf("/api/explain expressions %+v", x.Expressions)
	}

	// The Explain page shows them too.
	p := &pages{router: r, gw: gw}
	doc := p.get(t, "/explain?"+url.Values{"upstream": {"up"}, "url": {"/items?x=1"}}.Encode(), http.StatusOK)
	rows := testid(doc, "expression")
	if rows.Length() != 2 {
		t.Fatalf("%d expression rows, want 2", rows.Length())
	}
	if got := testid(rows.Eq(0), "expression-error").Text(); !strings.Contains(got, "no such key") {
		t.Errorf("key row error %q, want the missing key", got)
	}
	if got := testid(rows.Eq(1), "expression-result").Text(); got != "true" {
		t.Errorf("filter row %q, want true", got)
	}

	// The Upstreams page lists them with the other settings.
	doc = p.get(t, "/upstreams", http.StatusOK)
	for name, want := range map[string]string{"key.expression": key.String(), "filter": filter.String()} {
		got := doc.Find(`[data-testid="setting"][data-setting="` + name + `"] [data-testid="setting-value"]`).Text()
		if got != want {
			t.Errorf("upstreams page %s %q, want %q", name, got, want)
		}
	}
}
