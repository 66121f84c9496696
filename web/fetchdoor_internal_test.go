package web

import (
	"log/slog"
	"net/http"
	"reflect"
	"runtime"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestFetchRouteHasOnlyMiddlewaresTheLaneMirrors fails when /fetch/* gains
// a chi middleware (on the route or the router) that the fast lane does
// not also apply: a hit the lane answers never passes through chi, so
// such a middleware would see only misses. Add the behaviour to both
// doors (and to laneMirrors below) or not at all.
func TestFetchRouteHasOnlyMiddlewaresTheLaneMirrors(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	// The lane recovers panics itself (web/fastlane conn.answer) and hands
	// an unanswered request to net/http, where s.recoverer answers it.
	laneMirrors := map[uintptr]string{reflect.ValueOf(s.recoverer).Pointer(): "recoverer"}

	found := false
	err := chi.Walk(s.routes(), func(method, route string, _ http.Handler, mws ...func(http.Handler) http.Handler) error {
		if route != "/fetch/*" {
			return nil
		}
		found = true
		for _, mw := range mws {
			if _, ok := laneMirrors[reflect.ValueOf(mw).Pointer()]; !ok {
				t.Errorf("%s %s: middleware %s is not applied by the fast lane", method, route, runtimeName(mw))
			}
		}
		if len(mws) != len(laneMirrors) {
			t.Errorf("%s %s: %d middlewares, want %d (the ones the lane mirrors)", method, route, len(mws), len(laneMirrors))
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
