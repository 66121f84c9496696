package transfer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/mongo"
	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/transfer"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown() // a no-op unless the copy measurement started FerretDB
	os.Exit(code)
}

// TestMeasureCopy measures Copy of a large SQLite cache into SQLite and
// MongoDB. It is not part of the default run: set CACHEGATE_BENCH_COPY=1
// (and optionally CACHEGATE_BENCH_COPY_N, default 100000 entries of 1 KiB,
// and CACHEGATE_BENCH_COPY_DIR to keep and reuse the source database).
// MongoDB is CACHEGATE_TEST_MONGODB_URI or an in-process FerretDB, whose
// own memory then counts in this process's.
//
//	CACHEGATE_BENCH_COPY=1 go test -run MeasureCopy -v -timeout 1h ./transfer/
func TestMeasureCopy(t *testing.T) {
	if os.Getenv("CACHEGATE_BENCH_COPY") == "" {
		t.Skip("set CACHEGATE_BENCH_COPY=1 to measure copies of a large cache")
	}
	n := 100_000
	if s := os.Getenv("CACHEGATE_BENCH_COPY_N"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatalf("CACHEGATE_BENCH_COPY_N: %v", err)
		}
	}
	dir := os.Getenv("CACHEGATE_BENCH_COPY_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	src := seedLarge(t, filepath.Join(dir, fmt.Sprintf("src-%d.db", n)), n)

	measure := func(name string, dst cache.Backend) {
		var peak uint64
		var ms runtime.MemStats
		runtime.GC()
		start := time.Now()
		res, err := transfer.Copy(context.Background(), src, dst, transfer.CopyOptions{Progress: func(p transfer.Progress) {
			if p.Done%1000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
		}})
		elapsed := time.Since(start)
		if err != nil || res.Done != int64(n) {
			t.Fatalf("%s: copied %d of %d: %v", name, res.Done, n, err)
		}
		runtime.ReadMemStats(&ms)
		t.Logf("%s: %d entries (%d MiB of bodies) in %s, %.0f entries/s; peak Go heap %.1f MiB, Go runtime total %.1f MiB",
			name, res.Done, res.Bytes>>20, elapsed.Round(10*time.Millisecond), float64(res.Done)/elapsed.Seconds(),
			float64(peak)/(1<<20), float64(ms.Sys)/(1<<20))
	}

	t.Run("sqlite", func(t *testing.T) {
		dst, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "dst.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		measure("sqlite → sqlite", dst)
	})
	t.Run("mongo", func(t *testing.T) {
		dst, err := mongo.Open(context.Background(), mongotest.URI(t))
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		measure("sqlite → mongodb", dst)
	})
}

// seedLarge opens the SQLite cache at path, filling it with n entries of
// 1 KiB unless it holds them already.
func seedLarge(tb testing.TB, path string, n int) cache.Backend {
	tb.Helper()
	b, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	ctx := context.Background()
	if c, err := b.Count(ctx, cache.Filter{}); err == nil && c.Entries == int64(n) {
		return b
	}
	body := make([]byte, 1024)
	start := time.Now()
	for i := range n {
		for j := range body {
			body[j] = byte(i + j)
		}
		e := cachetest.SetBody(cachetest.NewEntry(fmt.Sprintf("k%07d", i)), body)
		e.URL = fmt.Sprintf("https://api.example/v%d/items/%d", i%7, i)
		e.Created = cachetest.T0.Add(time.Duration(i) * time.Millisecond)
		if err := b.Put(ctx, e); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("seeded %d entries in %s", n, time.Since(start).Round(time.Millisecond))
	return b
}
