package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// mustOpen opens dsn and closes it when the test ends.
func mustOpen(tb testing.TB, dsn string) *sqlite.Backend {
	tb.Helper()
	b, err := sqlite.Open(dsn)
	if err != nil {
		tb.Fatalf("Open(%q): %v", dsn, err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestBackend(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Backend {
		return mustOpen(t, "sqlite://"+filepath.Join(t.TempDir(), "cache.db"))
	})
}

func TestBackendCapped(t *testing.T) {
	cachetest.RunCapped(t, func(t *testing.T, maxBytes int64) cache.Backend {
		return mustOpen(t, "sqlite://"+filepath.Join(t.TempDir(), "cache.db")+"?max_size="+strconv.FormatInt(maxBytes, 10))
	})
}

func TestReopenKeepsEntries(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "cache.db")
	b, err := sqlite.Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	want := cachetest.NewEntry("kept")
	cachetest.MustPut(t, b, want)
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b = mustOpen(t, dsn)
	if d := cachetest.Diff(cachetest.MustGet(t, b, "kept"), want); d != "" {
		t.Fatalf("after reopening: %s", d)
	}
	tot, err := b.Count(context.Background(), cache.Filter{})
	if err != nil || tot.Entries != 1 || tot.Bytes != want.Size {
		t.Fatalf("Count after reopening = %+v, %v; want 1 entry of %d bytes", tot, err, want.Size)
	}
}

func TestOpenCreatesFolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "c", "cache.db")
	b := mustOpen(t, "sqlite://"+path)
	cachetest.MustPut(t, b, cachetest.NewEntry("k"))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
	if got := b.Path(); got != path {
		t.Fatalf("Path() = %q, want %q", got, path)
	}
}

func TestOpenRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	b := mustOpen(t, "sqlite://./data/cache.db")
	cachetest.MustPut(t, b, cachetest.NewEntry("k"))
	if _, err := os.Stat(filepath.Join("data", "cache.db")); err != nil {
		t.Fatalf("relative database not created under ./data: %v", err)
	}
	mustOpen(t, "sqlite://plain.db")
	if _, err := os.Stat("plain.db"); err != nil {
		t.Fatalf("sqlite://plain.db not created in the working directory: %v", err)
	}
}

func TestOpenDSN(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name string
		dsn  string
		max  int64
		bad  bool
	}{
		{"no cap", "sqlite://" + dir + "/a.db", 0, false},
		{"iec cap", "sqlite://" + dir + "/b.db?max_size=64MiB", 64 << 20, false},
		{"si cap", "sqlite://" + dir + "/c.db?max_size=1GB", 1_000_000_000, false},
		{"plain bytes", "sqlite://" + dir + "/d.db?max_size=5000", 5000, false},
		{"wrong scheme", "mongodb://x", 0, true},
		{"empty path", "sqlite://", 0, true},
		{"bad size", "sqlite://" + dir + "/e.db?max_size=lots", 0, true},
		{"unknown parameter", "sqlite://" + dir + "/f.db?mode=fast", 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := sqlite.Open(c.dsn)
			if c.bad {
				if !errors.Is(err, cache.ErrInvalid) {
					t.Fatalf("Open(%q) err = %v, want one wrapping cache.ErrInvalid", c.dsn, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", c.dsn, err)
			}
			defer b.Close()
			if got := b.MaxBytes(); got != c.max {
				t.Fatalf("MaxBytes() = %d, want %d", got, c.max)
			}
		})
	}
}

// TestMigrationsIdempotent opens one file several times: every open after
// the first must find the schema current and leave the data alone.
func TestMigrationsIdempotent(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "cache.db")
	for i := range 3 {
		b, err := sqlite.Open(dsn)
		if err != nil {
			t.Fatalf("Open #%d: %v", i+1, err)
		}
		cachetest.MustPut(t, b, cachetest.NewEntry(string(rune('a'+i))))
		tot, err := b.Count(context.Background(), cache.Filter{})
		if err != nil || tot.Entries != int64(i+1) {
			t.Fatalf("Open #%d: Count = %+v, %v; want %d entries", i+1, tot, err, i+1)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

func TestPingVacuum(t *testing.T) {
	ctx := context.Background()
	b := mustOpen(t, "sqlite://"+filepath.Join(t.TempDir(), "cache.db"))
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, 1<<20)))
	if _, err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := b.Vacuum(ctx); err != nil {
		t.Fatalf("Vacuum: %v", err)
	}
	b.Close()
	if err := b.Ping(ctx); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("Ping after Close = %v, want cache.ErrClosed", err)
	}
}

// TestBulkDeletesSpanBatches checks that deletes running in batches of 500
// still remove every match, and only matches.
func TestBulkDeletesSpanBatches(t *testing.T) {
	ctx := context.Background()
	b, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "batches.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var entries []*cache.Entry
	for i := range 1700 {
		e := cachetest.NewEntry(fmt.Sprintf("k%04d", i))
		if i%3 != 0 {
			e.Expires = cachetest.T0.Add(-time.Minute) // 1133 expired
		}
		if i%2 == 0 {
			e.Upstream = "other" // 850
		}
		entries = append(entries, e)
	}
	if err := b.PutMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if n, err := b.DeleteExpired(ctx, cachetest.T0); err != nil || n != 1133 {
		t.Fatalf("DeleteExpired = %d, %v; want 1133", n, err)
	}
	if n, err := b.DeleteMatching(ctx, cache.Filter{Upstream: "other"}); err != nil || n != 284 {
		t.Fatalf("DeleteMatching = %d, %v; want the 284 fresh entries of upstream other", n, err)
	}
	if tot, _ := b.Count(ctx, cache.Filter{}); tot.Entries != 1700-1133-284 {
		t.Fatalf("%d entries left, want %d", tot.Entries, 1700-1133-284)
	}
}
