package web

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
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

func TestHotTierParams(t *testing.T) {
	tests := []struct {
		dsn, rest   string
		defaultSize int64
		size        int64
	}{
		{"sqlite://c.db", "sqlite://c.db", defaultHotSize, defaultHotSize},
		{"sqlite://c.db?max_size=1GiB&hot_size=8MiB&hot_ttl=2s", "sqlite://c.db?max_size=1GiB", defaultHotSize, 8 << 20},
		{"sqlite://c.db?hot_size=0", "sqlite://c.db", defaultHotSize, 0},
		{"mongodb://h/db?replicaSet=rs", "mongodb://h/db?replicaSet=rs", 0, 0},
		{"mongodb://h/db?hot_size=1MiB", "mongodb://h/db", 0, 1 << 20},
	}
	for _, tt := range tests {
		rest, tier, err := hotTier(tt.dsn, tt.defaultSize)
		if err != nil || rest != tt.rest || tier.size != tt.size {
			t.Errorf("hotTier(%q) = %q, size %d, %v; want %q, size %d", tt.dsn, rest, tier.size, err, tt.rest, tt.size)
		}
	}
	if _, _, err := hotTier("sqlite://c.db?hot_size=lots", defaultHotSize); err == nil {
		t.Error("hot_size=lots accepted")
	}

	// Large hot bodies go to files in the temporary directory, another
	// one, or nowhere.
	dir := t.TempDir()
	for dsn, want := range map[string]string{
		"sqlite://c.db":                          os.TempDir(),
		"sqlite://c.db?hot_files=" + dir:         dir,
		"sqlite://c.db?hot_files=off&max_size=1": "",
	} {
		rest, tier, err := hotTier(dsn, defaultHotSize)
		if err != nil || tier.filesDir != want || strings.Contains(rest, "hot_files") {
			t.Errorf("hotTier(%q) = %q, files in %q, %v; want files in %q", dsn, rest, tier.filesDir, err, want)
		}
	}
	if _, _, err := hotTier("sqlite://c.db?hot_files=/no/such/dir", defaultHotSize); err == nil || !strings.Contains(err.Error(), "hot_files") {
		t.Errorf("a missing hot_files directory: %v", err)
	}
}
