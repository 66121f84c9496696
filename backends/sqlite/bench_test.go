package sqlite

// Benchmarks on a large table. The table has CACHEGATE_BENCH_ROWS rows
// (default 10000, quick enough for every run); for the million-row numbers:
//
//	CACHEGATE_BENCH_ROWS=1000000 go test -run '^$' -bench . -benchtime 2s ./backends/sqlite/
//
// The database is filled once per process, in one transaction of batched
// multi-row inserts, then shared by every benchmark.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

var bench struct {
	once sync.Once
	dir  string
	b    *Backend
	keys []string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.b != nil {
		bench.b.Close()
	}
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("CACHEGATE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 10_000
}

// benchBackend returns the shared, filled benchmark database.
func benchBackend(tb testing.TB) (*Backend, []string) {
	tb.Helper()
	bench.once.Do(func() {
		if bench.dir, bench.err = os.MkdirTemp("", "cachegate-bench-"); bench.err != nil {
			return
		}
		if bench.b, bench.err = Open("sqlite://" + filepath.Join(bench.dir, "bench.db")); bench.err != nil {
			return
		}
		start := time.Now()
		bench.keys, bench.err = fill(context.Background(), bench.b, benchRows())
		tb.Logf("filled %d rows in %v", len(bench.keys), time.Since(start))
	})
	if bench.err != nil {
		tb.Fatalf("benchmark database: %v", bench.err)
	}
	return bench.b, bench.keys
}

// fill inserts n synthetic entries in one transaction, 200 rows per
// statement. Sizes range over 0-255 bytes, so the size order is full of
// ties, as a real cache's is.
func fill(ctx context.Context, b *Backend, n int) ([]string, error) {
	const batch = 200
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	// Index inserts land at random pages; a page cache that holds the
	// indexes keeps a million-row fill from spilling to the WAL over and
	// over. The writer pool has one connection, so this applies to the tx.
	if _, err := b.writer.ExecContext(ctx, `PRAGMA cache_size = -2000000`); err != nil {
		return nil, err
	}
	defer b.writer.ExecContext(ctx, `PRAGMA cache_size = -16000`)
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	body := make([]byte, 256)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	upstreams := []string{"github", "demo", "api", "static"}
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		var entryArgs, bodyArgs []any
		for i := start; i < end; i++ {
			key := cache.MakeKey(strconv.Itoa(i))
			keys[i] = key
			size := rng.IntN(256)
			e := &cache.Entry{
				Key: key, BaseKey: key, Upstream: upstreams[i%len(upstreams)], Method: "GET",
				URL:         fmt.Sprintf("https://%s.example/items/%d?page=%d", upstreams[i%len(upstreams)], rng.IntN(n), i%7),
				Header:      map[string][]string{"Content-Type": {"application/json"}},
				Body:        body[:size],
				Status:      200,
				ContentType: "application/json",
				Created:     t0.Add(time.Duration(i) * time.Millisecond),
				Expires:     t0.Add(time.Duration(rng.IntN(48)) * time.Hour),
				Hits:        int64(rng.IntN(100)),
			}
			r, err := toRow(e)
			if err != nil {
				return nil, err
			}
			entryArgs = append(entryArgs, int64(i+1))
			entryArgs = append(entryArgs, r.args()...)
			bodyArgs = append(bodyArgs, int64(i+1), e.Body)
		}
		rows := end - start
		cols := strings.Repeat(", ?", 19)
		q := `INSERT INTO entries (id, key, base_key, upstream, method, url, request_header,
			status, header, size, content_type, request_time, created, expires,
			etag, last_modified, hits, last_hit, last_used, reason) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?"+cols+"),", rows), ",")
		if _, err := tx.ExecContext(ctx, q, entryArgs...); err != nil {
			return nil, err
		}
		q = `INSERT INTO bodies (id, body) VALUES ` + strings.TrimSuffix(strings.Repeat("(?, ?),", rows), ",")
		if _, err := tx.ExecContext(ctx, q, bodyArgs...); err != nil {
			return nil, err
		}
	}
	return keys, tx.Commit()
}

func BenchmarkGet(b *testing.B) {
	db, keys := benchBackend(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, ok, err := db.Get(ctx, keys[rng.IntN(len(keys))]); !ok || err != nil {
			b.Fatalf("Get: %v, %v", ok, err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	db, keys := benchBackend(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 5))
		for pb.Next() {
			if _, ok, err := db.Get(ctx, keys[rng.IntN(len(keys))]); !ok || err != nil {
				b.Fatalf("Get: %v, %v", ok, err)
			}
		}
	})
}

// deepCursor returns the cursor that starts a page 90% of the way into
// the listing in order s.
func deepCursor(tb testing.TB, db *Backend, s cache.Sort) string {
	tb.Helper()
	col, dir := sortColumns[s.Field], "ASC"
	if s.Desc {
		dir = "DESC"
	}
	var n int
	if err := db.reader.Get(&n, `SELECT COUNT(*) FROM entries`); err != nil {
		tb.Fatal(err)
	}
	e, err := scanEntry(db.reader.QueryRow(fmt.Sprintf(`SELECT %s FROM entries e ORDER BY e.%s %s, e.key %s LIMIT 1 OFFSET ?`,
		entryColumns, col, dir, dir), n*9/10), false)
	if err != nil {
		tb.Fatal(err)
	}
	return cache.CursorAfter(e, s)
}

func BenchmarkListBySize(b *testing.B) {
	db, _ := benchBackend(b)
	ctx := context.Background()
	for _, desc := range []bool{false, true} {
		s := cache.Sort{Field: cache.SortSize, Desc: desc}
		for _, page := range []struct {
			name   string
			cursor string
		}{{"first", ""}, {"deep", deepCursor(b, db, s)}} {
			b.Run(fmt.Sprintf("desc=%v/%s", desc, page.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					p, err := db.List(ctx, cache.Query{Sort: s, Limit: 50, Cursor: page.cursor})
					if err != nil || len(p.Entries) != 50 {
						b.Fatalf("List: %d entries, %v", len(p.Entries), err)
					}
				}
			})
		}
	}
}

func BenchmarkListFiltered(b *testing.B) {
	db, _ := benchBackend(b)
	ctx := context.Background()
	q := cache.Query{Filter: cache.Filter{Upstream: "demo"}, Limit: 50}
	b.ReportAllocs()
	for b.Loop() {
		if p, err := db.List(ctx, q); err != nil || len(p.Entries) != 50 {
			b.Fatalf("List: %d entries, %v", len(p.Entries), err)
		}
	}
}

func BenchmarkCount(b *testing.B) {
	db, _ := benchBackend(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Count(ctx, cache.Filter{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	db, _ := benchBackend(b)
	ctx := context.Background()
	e := &cache.Entry{Upstream: "bench", Method: "GET", URL: "https://bench.example/x", Status: 200,
		Body: make([]byte, 1024), Created: time.Now(), Header: map[string][]string{"A": {"b"}}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Key = "bench-put-" + strconv.Itoa(i%1000)
		e.BaseKey = e.Key
		if err := db.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountByReason is what the Upstreams page asks per expiry rule:
// one upstream's entries whose reason starts with the rule's prefix.
func BenchmarkCountByReason(b *testing.B) {
	db, _ := benchBackend(b)
	ctx := context.Background()
	f := cache.Filter{Upstream: "demo", Reason: `urls_expire_after pattern "/items/*" `}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.Count(ctx, f); err != nil {
			b.Fatal(err)
		}
	}
}
