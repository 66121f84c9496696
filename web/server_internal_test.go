package web

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecovererAnswersJSON(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/fetch/x/y", nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"internal"`) {
		t.Fatalf("got %d %s", w.Code, w.Body.String())
	}
	if strings.Contains(w.Body.String(), "boom") {
		t.Fatal("the panic value reached the user")
	}
}

func TestLoopbackListen(t *testing.T) {
	tests := []struct {
		name   string
		listen string
		want   bool
	}{
		{name: "ipv4 loopback", listen: "127.0.0.1:8080", want: true},
		{name: "other ipv4 loopback", listen: "127.0.0.2:8080", want: true},
		{name: "ipv6 loopback", listen: "[::1]:8080", want: true},
		{name: "localhost", listen: "localhost:8080", want: true},
		{name: "localhost upper case", listen: "LOCALHOST:80", want: true},
		{name: "all interfaces", listen: ":8080", want: false},
		{name: "unspecified", listen: "0.0.0.0:8080", want: false},
		{name: "ipv6 unspecified", listen: "[::]:8080", want: false},
		{name: "lan address", listen: "192.168.1.2:8080", want: false},
		{name: "other private address", listen: "10.1.2.3:8080", want: false},
		{name: "host name", listen: "example.com:8080", want: false},
		{name: "bad address", listen: "nonsense", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isLoopbackListen(tt.listen); got != tt.want {
				t.Fatalf("isLoopbackListen(%q) = %v, want %v", tt.listen, got, tt.want)
			}
		})
	}
}
