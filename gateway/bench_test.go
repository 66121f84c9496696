package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// discard is a ResponseWriter that keeps nothing, so the benchmarks measure
// the gateway and not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkServeHit measures a cache hit through ServeHTTP and through
// Lookup (the fast lane's door), without the network: the gateway's own
// cost per hit, on the production default (the hot tier over SQLite).
// Lookup-declined is what a request the lane hands on to net/http paid
// the gateway before: Lookup on a URL that is not cached.
// Lookup-uncounted leaves out Answer.Done, which counts the hit (stats,
// metrics, the dashboard's events, the access log): Lookup less it is
// what counting costs a hit the lane answers.
func BenchmarkServeHit(b *testing.B) {
	for _, c := range []struct {
		entry string
		size  int
	}{{"ServeHTTP", 1 << 10}, {"ServeHTTP", 100 << 10}, {"Lookup", 1 << 10}, {"Lookup-uncounted", 1 << 10}, {"Lookup-declined", 1 << 10}} {
		size := c.size
		b.Run(fmt.Sprintf("%s/%dKiB", c.entry, size>>10), func(b *testing.B) {
			body := strings.Repeat("x", size)
			up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				fmt.Fprint(w, body)
			})
			cold, err := sqlite.Open("sqlite://" + filepath.Join(b.TempDir(), "bench.db"))
			if err != nil {
				b.Fatal(err)
			}
			e := newEnv(b, policy(), up, tiered.New(cold, 64<<20, time.Second))
			e.get("/b", "MISS")
			req := httptest.NewRequest("GET", "/fetch/up/b", nil)
			b.SetBytes(int64(size))
			if c.entry == "Lookup-declined" {
				missing := httptest.NewRequest("GET", "/fetch/up/not-cached", nil)
				b.ReportAllocs()
				for b.Loop() {
					if _, ok := e.gw.Lookup(missing); ok {
						b.Fatal("answered")
					}
				}
				return
			}
			hitLoop(b, e.gw, req, c.entry)
		})
	}
}

// hitLoop answers req over and over in b's loop, as the server would:
// entry "Lookup" through the lane's door with the hit counted (Done),
// "Lookup-uncounted" the same without counting, "ServeHTTP" through
// net/http's door only. Lookup declines once a second, when the hot copy
// is due to be read again, and ServeHTTP answers then, as in the lane. It
// fails b unless the last answer was a hit.
func hitLoop(b *testing.B, g *gateway.Gateway, req *http.Request, entry string) {
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		if entry != "ServeHTTP" {
			if a, ok := g.Lookup(req); ok {
				if entry == "Lookup" {
					a.Done(int64(len(a.Body)))
				}
				w.h.Set("X-Cache", "HIT")
				continue
			}
		}
		g.ServeHTTP(w, req)
	}
	if got := w.h.Get("X-Cache"); got != "HIT" {
		b.Fatalf("X-Cache %q", got)
	}
}

// BenchmarkJudge measures the reuse decision on a stored entry.
func BenchmarkJudge(b *testing.B) {
	p := policy(func(p *cache.Policy) { p.CacheControl = true })
	_ = p.Validate()
	now := time.Now()
	e := &cache.Entry{Created: now, RequestTime: now, Expires: now.Add(time.Hour),
		Header: http.Header{"Cache-Control": {"max-age=3600"}, "Date": {now.UTC().Format(http.TimeFormat)}}}
	h := http.Header{"Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		if j := p.Judge(e, h, now); j.Use != cache.UseFresh {
			b.Fatal(j.Reason)
		}
	}
}

// BenchmarkMakeKey measures hashing the parts of a cache key.
func BenchmarkMakeKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		cache.MakeKey("up", "GET", "https://api.example.com/repos/a/b?page=2&per_page=100", "Accept-Language", "en")
	}
}
