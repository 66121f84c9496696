package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/migrations"
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

// TestBulkDeletesSpanBatches checks that deletes running in batches (of
// 1000 entries) still remove every match, and only matches.
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

// TestUpgradeKeepsEntries builds a file with the schema of the first two
// migrations, as a cache written by an older version has it, and opens
// it: the entries are all there, found, listed, counted and deleted as
// usual, and the file has the indexes of the current schema.
func TestUpgradeKeepsEntries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	var want []*cache.Entry
	for i, k := range []string{"a", "b", "c"} {
		e := cachetest.SetBody(cachetest.NewEntry(k), []byte(strings.Repeat(k, 10*(i+1))))
		e.Expires = cachetest.T0.Add(time.Duration(i) * time.Hour)
		e.Hits, e.LastHit = int64(i), cachetest.T0.Add(time.Minute)
		want = append(want, e)
	}
	writeOldCache(t, path, []string{"0001_entries.sql", "0002_upstream_sort_indexes.sql"}, want)

	b := mustOpen(t, "sqlite://"+path)
	for _, w := range want {
		if d := cachetest.Diff(cachetest.MustGet(t, b, w.Key), w); d != "" {
			t.Errorf("%s after the upgrade: %s", w.Key, d)
		}
	}
	want3 := cache.Totals{Entries: 3, Bytes: 10 + 20 + 30}
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot != want3 {
		t.Fatalf("Count = %+v, %v; want %+v", tot, err, want3)
	}
	p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortSize, Desc: true}, Limit: 2})
	if err != nil || len(p.Entries) != 2 || p.Entries[0].Key != "c" || p.Next == "" {
		t.Fatalf("List by size = %d entries, next %q, %v; want c first and a next page", len(p.Entries), p.Next, err)
	}
	// Expired at T0: a.
	if n, err := b.DeleteExpired(ctx, cachetest.T0); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot.Entries != 2 || tot.Bytes != 50 {
		t.Fatalf("Count after DeleteExpired = %+v, %v; want 2 entries of 50 bytes", tot, err)
	}
	names := indexNames(t, path)
	if slices.Contains(names, "entries_last_used") || !slices.Contains(names, "entries_deleted") || slices.Contains(names, "entries_lru") {
		t.Fatalf("indexes after the upgrade = %v, want entries_deleted and no index of eviction order", names)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// With a cap, Open adds the index of eviction order.
	mustOpen(t, "sqlite://"+path+"?max_size=1MiB")
	if names := indexNames(t, path); !slices.Contains(names, "entries_lru") {
		t.Fatalf("indexes of a capped cache = %v, want entries_lru", names)
	}
}

// writeOldCache creates the file at path with the given migrations only,
// recorded as Open records them, and stores entries in it with plain SQL.
func writeOldCache(tb testing.TB, path string, names []string, entries []*cache.Entry) {
	tb.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	exec := func(query string, args ...any) {
		tb.Helper()
		if _, err := db.Exec(query, args...); err != nil {
			tb.Fatalf("%.60s: %v", query, err)
		}
	}
	exec(`CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`)
	for _, name := range names {
		script, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			tb.Fatal(err)
		}
		exec(string(script))
		exec(`INSERT INTO migrations (name, applied_at) VALUES (?, 0)`, name)
	}
	for _, e := range entries {
		reqHeader, _ := json.Marshal(e.RequestHeader)
		header, _ := json.Marshal(e.Header)
		lastUsed := max(e.Created.UnixNano(), e.LastHit.UnixNano())
		exec(`INSERT INTO entries (key, base_key, upstream, method, url, request_header, status, header,
			size, content_type, request_time, created, expires, etag, last_modified, hits, last_hit, last_used, reason)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Key, e.BaseKey, e.Upstream, e.Method, e.URL, string(reqHeader), e.Status, string(header),
			len(e.Body), e.ContentType, e.RequestTime.UnixNano(), e.Created.UnixNano(), cache.ExpiresOrdinal(e.Expires),
			e.ETag, e.LastModified, e.Hits, e.LastHit.UnixNano(), lastUsed, e.Reason)
		exec(`INSERT INTO bodies (id, body) SELECT id, ? FROM entries WHERE key = ?`, e.Body, e.Key)
	}
}

// A stamp names the version stored: that of the entry Get returns, a
// new one after a new store, none after a delete.
func TestStampNamesTheStoredVersion(t *testing.T) {
	ctx := context.Background()
	b, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, ok, err := b.Stamp(ctx, "k"); ok || err != nil {
		t.Fatalf("stamp of nothing: %v %v", ok, err)
	}
	for i, e := range []*cache.Entry{
		cachetest.SetBody(cachetest.NewEntry("k"), []byte("one")),
		func() *cache.Entry { // never expires
			e := cachetest.SetBody(cachetest.NewEntry("k"), []byte("two"))
			e.Created, e.Expires = e.Created.Add(time.Second), time.Time{}
			return e
		}(),
	} {
		cachetest.MustPut(t, b, e)
		got := cachetest.MustGet(t, b, "k")
		s, ok, err := b.Stamp(ctx, "k")
		if err != nil || !ok || !s.Same(cache.StampOf(got)) || !s.Same(cache.StampOf(e)) {
			t.Fatalf("%d: stamp %+v %v %v, want that of the entry stored, %+v", i, s, ok, err, cache.StampOf(got))
		}
		if i > 0 && s.Same(cache.Stamp{Created: cachetest.T0, Expires: cachetest.T0.Add(time.Hour), Size: 3}) {
			t.Fatal("a new version kept the old stamp")
		}
	}
	if _, err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Stamp(ctx, "k"); ok || err != nil {
		t.Fatalf("stamp after a delete: %v %v", ok, err)
	}
}
