package upstream_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cachegate/cachegate/bench/upstream"
)

func get(tb testing.TB, url string) (*http.Response, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, string(body)
}

func TestBytes(t *testing.T) {
	srv := httptest.NewServer(upstream.New())
	defer srv.Close()

	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "plain", path: "/bytes/10", want: 10},
		{name: "kibibyte", path: "/bytes/1k", want: 1024},
		{name: "hundred kibibytes", path: "/bytes/100k?n=3", want: 100 << 10},
		{name: "over one chunk", path: "/bytes/3m", want: 3 << 20},
		{name: "empty", path: "/bytes/0", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tt.path)
			if got, want := resp.StatusCode, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			if got := len(body); got != tt.want {
				t.Fatalf("len(body) = %d, want %d", got, tt.want)
			}
			if got, want := resp.Header.Get("Cache-Control"), "public, max-age=3600"; got != want {
				t.Fatalf("Cache-Control = %q, want %q", got, want)
			}
		})
	}

	for _, bad := range []string{"/bytes/x", "/bytes/-1", "/bytes/2000m"} {
		if resp, _ := get(t, srv.URL+bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s: status = %d, want 400", bad, resp.StatusCode)
		}
	}
}

func TestSlowCountsCalls(t *testing.T) {
	srv := httptest.NewServer(upstream.New())
	defer srv.Close()

	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, srv.URL+"/slow?ms=5&id=herd")
		}()
	}
	wg.Wait()
	get(t, srv.URL+"/slow?ms=0&id=other")

	if _, body := get(t, srv.URL+"/_calls?id=herd"); strings.TrimSpace(body) != "20" {
		t.Fatalf("calls for herd = %q, want 20", body)
	}
	if _, body := get(t, srv.URL+"/_stats"); !strings.Contains(body, `"slow_calls":21`) {
		t.Fatalf("stats = %q, want slow_calls 21", body)
	}
}
