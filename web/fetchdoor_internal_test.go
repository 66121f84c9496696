package web

import (
	"log/slog"
	"net/http"
	"reflect"
	"runtime"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestFetchRouteHasNoMiddleware fails when /fetch/* gains a chi
// middleware (on the route or the router): a hit the fast lane answers
// never passes through chi, so such a middleware would see only misses.
// What every /fetch/ request needs belongs to the gateway (its ServeHTTP
// and Lookup), which both doors call.
func TestFetchRouteHasNoMiddleware(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	found := false
	err := chi.Walk(s.routes(), func(method, route string, _ http.Handler, mws ...func(http.Handler) http.Handler) error {
		if route != "/fetch/*" {
			return nil
		}
		found = true
		for _, mw := range mws {
			t.Errorf("%s %s: middleware %s, which the fast lane would skip", method, route, runtimeName(mw))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Fatal("no /fetch/* route in the router")
	}
}

func runtimeName(f any) string {
	return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
}
