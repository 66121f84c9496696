package e2e_test

// BenchmarkEntriesList measures GET /api/entries sorted by size, largest
// first, over HTTP against a server on a large SQLite cache: the first
// page, a deep page (entry 50,000 on, page 1,000 at 50 a page; the middle
// of smaller caches), each with and without the total count, and a
// filtered listing whose count cannot use the running totals. The cache
// has CACHEGATE_BENCH_ROWS entries (default 20,000, quick enough for CI):
//
//	CACHEGATE_BENCH_ROWS=1000000 go test -run '^$' -bench EntriesList -benchtime 3s ./e2e/

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("CACHEGATE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 20_000
}

// benchEntries yields n synthetic entries of four upstreams, with body
// sizes of 0 to 1023 bytes so that the size order is full of ties, as a
// real cache's is.
func benchEntries(n int) iter.Seq[*cache.Entry] {
	return func(yield func(*cache.Entry) bool) {
		rng := rand.New(rand.NewPCG(1, 2))
		body := make([]byte, 1024)
		t0 := time.Now().Add(-time.Hour)
		upstreams := []string{"github", "demo", "api", "static"}
		for i := 0; i < n; i++ {
			key := cache.MakeKey(strconv.Itoa(i))
			up := upstreams[i%len(upstreams)]
			size := rng.IntN(1024)
			e := &cache.Entry{
				Key: key, BaseKey: key, Upstream: up, Method: "GET",
				URL:    fmt.Sprintf("https://%s.example/items/%d?page=%d", up, rng.IntN(n), i%7),
				Header: http.Header{"Content-Type": {"application/json"}}, Body: body[:size], Size: int64(size),
				Status: 200, ContentType: "application/json",
				Created: t0.Add(time.Duration(i) * time.Microsecond), Expires: t0.Add(time.Duration(rng.IntN(48)) * time.Hour),
				Hits: int64(rng.IntN(100)), Reason: "expire_after gives 1h0m0s",
			}
			if !yield(e) {
				return
			}
		}
	}
}

// fillBench creates a SQLite cache of n entries with the backend's Load
// (one transaction, indexes built after) and returns its DSN.
func fillBench(b *testing.B, n int) string {
	b.Helper()
	dsn := "sqlite://" + filepath.Join(b.TempDir(), "bench.db")
	be, err := sqlite.Open(dsn)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := be.Load(context.Background(), benchEntries(n)); err != nil {
		b.Fatal(err)
	}
	if err := be.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d entries in %v", n, time.Since(start).Round(time.Millisecond))
	return dsn
}

// getList fetches a listing and returns its next cursor.
func getList(tb testing.TB, client *http.Client, u string) (next string, entries int) {
	resp, err := client.Get(u)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tb.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	var l entryList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		tb.Fatal(err)
	}
	return l.Next, len(l.Entries)
}

func BenchmarkEntriesList(b *testing.B) {
	n := benchRows()
	srv := startServer(b, web.Config{Backend: fillBench(b, n)})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	base := srv.URL() + "/api/entries?sort=size&order=desc"

	// The cursor after entry `deep`, walked to 1,000 entries a page.
	deep := min(50_000, n/2)
	cursor := ""
	for seen := 0; seen < deep; {
		limit := min(1000, deep-seen)
		u := base + "&count=false&limit=" + strconv.Itoa(limit)
		if cursor != "" {
			u += "&next=" + url.QueryEscape(cursor)
		}
		var got int
		cursor, got = getList(b, client, u)
		seen += got
	}
	deepQuery := "&next=" + url.QueryEscape(cursor)

	for _, bc := range []struct{ name, query string }{
		{"first_page", "&count=false"},
		{"deep_page", "&count=false" + deepQuery},
		{"first_page_with_total", ""},
		{"deep_page_with_total", deepQuery},
		{"filtered_first_page", "&upstream=api&min_size=512&count=false"},
		{"filtered_with_total", "&upstream=api&min_size=512"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u := base + "&limit=50" + bc.query
			for b.Loop() {
				if _, got := getList(b, client, u); got != 50 {
					b.Fatalf("%d entries on the page, want 50", got)
				}
			}
		})
	}
}
