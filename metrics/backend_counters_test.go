package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/metrics"
)

// Evictions, purges and write-behind flushes are counted where they
// happen and move in /metrics: a capped memory backend, and a capped
// SQLite file behind a small hot tier that writes behind.
func TestMetricsCountEvictionsPurgesAndFlushes(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(4 << 10)
	t.Cleanup(func() { mem.Close() })
	disk, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db") + "?max_size=4KiB")
	if err != nil {
		t.Fatal(err)
	}
	tier := tiered.New(disk, 8<<10, time.Minute).WriteBehind(tiered.WriteBehindOptions{Window: time.Hour})
	t.Cleanup(func() { tier.Close() })
	served := tier.Served()
	backends := map[string]cache.Backend{"mem": mem, "disk": served}

	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{Name: "x", URL: &url.URL{Scheme: "http", Host: "x.invalid"},
		Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)), Backend: mem, BackendName: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	e := &env{gw: gw, metrics: metrics.Handler(metrics.Options{Gateway: gw, Backends: backends})}

	_, before := e.scrape(t)
	for key, want := range map[string]float64{
		`cachegate_backend_evictions_total{backend=mem}`:                   0,
		`cachegate_backend_evictions_total{backend=disk}`:                  0,
		`cachegate_hot_tier_evictions_total{backend=disk}`:                 0,
		`cachegate_backend_purged_total{backend=mem}`:                      0,
		`cachegate_backend_purged_total{backend=disk}`:                     0,
		`cachegate_writebehind_flush_duration_seconds{backend=disk}_count`: 0,
		`cachegate_writebehind_flushed_entries_total{backend=disk}`:        0,
	} {
		if got, ok := before[key]; !ok || got != want {
			t.Errorf("before: %s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if _, ok := before[`cachegate_hot_tier_evictions_total{backend=mem}`]; ok {
		t.Error("a backend without a hot tier reports hot-tier evictions")
	}

	// Ten entries of 1 KiB: four fit the memory cap and SQLite's, about
	// four the 8 KiB tier (it costs each its footprint).
	const n = 10
	for i := range n {
		en := cachetest.NewEntry(fmt.Sprintf("k%d", i))
		en.Body = bytes.Repeat([]byte{'x'}, 1<<10)
		en.Size = int64(len(en.Body))
		if err := mem.Put(ctx, en); err != nil {
			t.Fatal(err)
		}
		if err := served.Put(ctx, en); err != nil {
			t.Fatal(err)
		}
	}
	tier.Flush(ctx)
	_, v := e.scrape(t)
	for key, want := range map[string]float64{
		`cachegate_backend_evictions_total{backend=mem}`:            n - 4,
		`cachegate_backend_evictions_total{backend=disk}`:           n - 4,
		`cachegate_writebehind_flushed_entries_total{backend=disk}`: n,
	} {
		if got := v[key]; got != want {
			t.Errorf("%s = %v, want %v", key, got, want)
		}
	}
	if got := v[`cachegate_hot_tier_evictions_total{backend=disk}`]; got < 1 || got > n {
		t.Errorf("hot-tier evictions %v, want between 1 and %d", got, n)
	}
	batches := v[`cachegate_writebehind_flush_duration_seconds{backend=disk}_count`]
	if batches < 1 || batches > n {
		t.Errorf("flush batches %v, want between 1 and %d", batches, n)
	}
	if got := v[`cachegate_writebehind_flush_duration_seconds{backend=disk}_le_4.194304`]; got != batches {
		t.Errorf("batches under 4.2 s: %v of %v", got, batches)
	}

	// Every entry expired an hour after cachetest.T0, long ago.
	memGone, err := mem.DeleteExpired(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	diskGone, err := served.DeleteExpired(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, after := e.scrape(t)
	if got := after[`cachegate_backend_purged_total{backend=mem}`]; got != float64(memGone) || memGone != 4 {
		t.Errorf("memory purged %v, DeleteExpired said %d, want 4", got, memGone)
	}
	if got := after[`cachegate_backend_purged_total{backend=disk}`]; got != float64(diskGone) || diskGone != 4 {
		t.Errorf("disk purged %v, DeleteExpired said %d, want 4", got, diskGone)
	}
}

// A tier reports the counters of the backend it wraps, and no others: in
// front of a directory, which has no size cap, there is no evictions
// series to read as "none evicted".
func TestMetricsShowOnlyTheCountersTheBackendKeeps(t *testing.T) {
	dir, err := fs.Open("file://" + t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tier := tiered.New(dir, 1<<20, time.Minute)
	t.Cleanup(func() { tier.Close() })
	gw, err := gateway.New(gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	e := &env{gw: gw, metrics: metrics.Handler(metrics.Options{Gateway: gw, Backends: map[string]cache.Backend{"files": tier.Served()}})}
	_, v := e.scrape(t)
	if got, ok := v[`cachegate_backend_evictions_total{backend=files}`]; ok {
		t.Errorf("evictions %v reported for a directory behind a tier, which evicts nothing", got)
	}
	for _, key := range []string{`cachegate_backend_purged_total{backend=files}`, `cachegate_hot_tier_evictions_total{backend=files}`} {
		if _, ok := v[key]; !ok {
			t.Errorf("%s missing", key)
		}
	}
}
