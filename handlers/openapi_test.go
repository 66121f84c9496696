package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
)

// newRouter mounts the API over a memory backend and a gateway without
// upstreams: enough to route requests and check their parameters.
func newRouter(tb testing.TB) chi.Router {
	tb.Helper()
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { gw.Close() })
	api := handlers.NewAPI(nil, gw, handlers.Options{Backends: map[string]cache.Backend{"default": memory.New(1 << 20)}})
	tb.Cleanup(api.Close)
	r := chi.NewRouter()
	api.Mount(r)
	return r
}

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		OperationID string `json:"operationId"`
		Parameters  []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
	} `json:"paths"`
}

func loadDoc(tb testing.TB) openAPIDoc {
	tb.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(handlers.OpenAPI(), &doc); err != nil {
		tb.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		tb.Fatalf("openapi version %q", doc.OpenAPI)
	}
	return doc
}

// TestOpenAPIMatchesRoutes walks the router: every route is documented
// with its method, and every documented operation is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadDoc(t)
	routed := map[string]bool{}
	err := chi.Walk(newRouter(t), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed[strings.ToLower(method)+" "+strings.TrimSuffix(route, "/")] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			documented[method+" "+path] = true
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
		}
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("openapi.json documents %s, which is not routed", d)
		}
	}
	if len(routed) < 18 {
		t.Fatalf("only %d routes walked", len(routed))
	}
}

// TestOpenAPIQueryParameters asks every route which query parameters it
// accepts (the 400 for an unknown one lists them) and compares with the
// documented ones.
func TestOpenAPIQueryParameters(t *testing.T) {
	doc := loadDoc(t)
	r := newRouter(t)
	key := cache.MakeKey("k")
	for path, ops := range doc.Paths {
		for method, op := range ops {
			t.Run(method+" "+path, func(t *testing.T) {
				var want []string
				for _, p := range op.Parameters {
					if p.In == "query" {
						want = append(want, p.Name)
					}
				}
				sort.Strings(want)
				target := strings.NewReplacer("{key}", key, "{id}", "0123456789abcdef").Replace(path) + "?zz_unknown=1"
				req := loopbackRequest(strings.ToUpper(method), target, nil)
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				var e struct{ Error, Code string }
				json.Unmarshal(rec.Body.Bytes(), &e)
				if rec.Code != http.StatusBadRequest || e.Code != "unknown_parameter" {
					t.Fatalf("an unknown parameter got %d %s", rec.Code, rec.Body)
				}
				_, acc, ok := strings.Cut(e.Error, "(accepted: ")
				if !ok {
					t.Fatalf("error %q lists no accepted parameters", e.Error)
				}
				var got []string
				for _, s := range strings.Split(strings.TrimSuffix(acc, ")"), ", ") {
					if s != "" {
						got = append(got, s)
					}
				}
				sort.Strings(got)
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Fatalf("accepted %v, documented %v", got, want)
				}
			})
		}
	}
}

func TestOpenAPIServed(t *testing.T) {
	rec := httptest.NewRecorder()
	newRouter(t).ServeHTTP(rec, loopbackRequest("GET", "/api/openapi.json", nil))
	if rec.Code != 200 || rec.Body.String() != string(handlers.OpenAPI()) {
		t.Fatalf("GET /api/openapi.json: %d", rec.Code)
	}
}
