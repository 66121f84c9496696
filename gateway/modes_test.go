package gateway_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// versioned is an upstream whose answers carry max-age=60 and an ETag of
// the current version, and honour If-None-Match: what both modes can cache
// and revalidate.
type versioned struct {
	version atomic.Int64
	fail    atomic.Bool
	delay   atomic.Int64 // milliseconds
	calls   atomic.Int64
	clock   atomic.Pointer[clock] // the gateway's clock, so Date agrees with it
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.calls.Add(1)
	time.Sleep(time.Duration(v.delay.Load()) * time.Millisecond)
	if v.fail.Load() {
		http.Error(w, "down", http.StatusBadGateway)
		return
	}
	etag := fmt.Sprintf(`"v%d"`, v.version.Load())
	w.Header().Set("Cache-Control", "max-age=60")
	w.Header().Set("ETag", etag)
	now := time.Now()
	if c := v.clock.Load(); c != nil {
		now = c.Now()
	}
	w.Header().Set("Date", now.UTC().Format(http.TimeFormat))
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	fmt.Fprintf(w, "body %s of %s", etag, r.URL.Path)
}

// TestCoreRulesInBothModes runs the rules both modes share against one
// upstream that gives freshness and validators.
func TestCoreRulesInBothModes(t *testing.T) {
	for _, mode := range []cache.Mode{cache.ModeRequestsCache, cache.ModeRFC9111} {
		mk := func(t *testing.T, mut ...func(*cache.Policy)) (*env, *versioned) {
			up := &versioned{}
			p := policy(append([]func(*cache.Policy){func(p *cache.Policy) {
				p.Mode = mode
				p.CacheControl = true
			}}, mut...)...)
			e := newEnv(t, p, up, nil)
			up.clock.Store(e.clock)
			return e, up
		}
		t.Run(string(mode), func(t *testing.T) {
			t.Run("hit, expiry from max-age, revalidation", func(t *testing.T) {
				e, up := mk(t)
				e.get("/a", "MISS")
				e.get("/a", "HIT")
				e.clock.Advance(61 * time.Second)
				e.get("/a", "REVALIDATED")
				e.get("/a", "HIT")
				up.version.Add(1)
				e.clock.Advance(61 * time.Second)
				if r := e.get("/a", "MISS"); !strings.Contains(r.body, `"v1"`) {
					t.Fatalf("changed body not fetched: %q", r.body)
				}
				if n := up.calls.Load(); n != 3 {
					t.Fatalf("upstream calls %d, want 3", n)
				}
			})
			t.Run("client no-cache revalidates", func(t *testing.T) {
				e, _ := mk(t)
				e.get("/a", "MISS")
				e.get("/a", "REVALIDATED", "Cache-Control", "no-cache")
				e.get("/a", "BYPASS", "Cache-Control", "no-store")
			})
			t.Run("only-if-cached", func(t *testing.T) {
				e, up := mk(t)
				if r := e.do("GET", "/a", "Cache-Control", "only-if-cached"); r.status != http.StatusGatewayTimeout {
					t.Fatalf("status %d", r.status)
				}
				if up.calls.Load() != 0 {
					t.Fatal("only-if-cached reached the upstream")
				}
			})
			t.Run("stale-if-error", func(t *testing.T) {
				e, up := mk(t, func(p *cache.Policy) { p.StaleIfError = cache.Staleness{On: true} })
				e.get("/a", "MISS")
				up.fail.Store(true)
				e.clock.Advance(2 * time.Minute)
				e.get("/a", "STALE")
			})
			t.Run("stale-while-revalidate", func(t *testing.T) {
				e, up := mk(t, func(p *cache.Policy) { p.StaleWhileRevalidate = cache.Staleness{On: true} })
				e.get("/a", "MISS")
				up.version.Add(1)
				e.clock.Advance(2 * time.Minute)
				e.get("/a", "STALE")
				deadline := time.Now().Add(5 * time.Second)
				for !strings.Contains(e.do("GET", "/a").body, `"v1"`) {
					if time.Now().After(deadline) {
						t.Fatal("background refresh never landed")
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
			t.Run("collapsed misses", func(t *testing.T) {
				e, up := mk(t)
				up.delay.Store(150)
				var wg sync.WaitGroup
				for range 30 {
					wg.Add(1)
					go func() { defer wg.Done(); e.do("GET", "/herd") }()
				}
				wg.Wait()
				if n := up.calls.Load(); n != 1 {
					t.Fatalf("upstream calls %d, want 1", n)
				}
			})
			t.Run("HEAD from GET", func(t *testing.T) {
				e, _ := mk(t)
				e.get("/a", "MISS")
				if r := e.do("HEAD", "/a"); r.xcache() != "HIT" {
					t.Fatalf("HEAD: %s", r.xcache())
				}
			})
			t.Run("force refresh", func(t *testing.T) {
				e, up := mk(t, overrides)
				e.get("/a", "MISS")
				up.version.Add(1)
				if r := e.get("/a", "MISS", cache.ForceRefreshHeader, "1"); !strings.Contains(r.body, `"v1"`) {
					t.Fatalf("force refresh body %q", r.body)
				}
				e.get("/a", "HIT")
			})
		})
	}
}
