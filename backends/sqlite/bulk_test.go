package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// bulkPuts are the two ways to store many entries at once; each test runs
// both.
var bulkPuts = []struct {
	name string
	put  func(ctx context.Context, b *sqlite.Backend, entries []*cache.Entry) error
}{
	{"PutMany", func(ctx context.Context, b *sqlite.Backend, entries []*cache.Entry) error {
		return b.PutMany(ctx, entries)
	}},
	{"Load", func(ctx context.Context, b *sqlite.Backend, entries []*cache.Entry) error {
		n, err := b.Load(ctx, slices.Values(entries))
		if err == nil && b.MaxBytes() == 0 && n != len(entries) {
			return fmt.Errorf("Load stored %d entries, want %d", n, len(entries))
		}
		return err
	}},
}

// bulkEntries returns n entries with varied fields, more than one
// statement's worth, plus the edge cases: no body, never expiring, hits.
func bulkEntries(n int) []*cache.Entry {
	var out []*cache.Entry
	for i := range n {
		e := cachetest.SetBody(cachetest.NewEntry("bulk-"+strconv.Itoa(i)), make([]byte, i%300))
		e.Created = cachetest.T0.Add(time.Duration(i) * time.Second)
		e.Expires = e.Created.Add(time.Duration(i%7) * time.Hour)
		switch i % 5 {
		case 1:
			e.Expires = time.Time{}
		case 2:
			e.Hits, e.LastHit = int64(i), e.Created.Add(time.Minute)
		case 3:
			e.Body, e.Size = nil, 0
		}
		out = append(out, e)
	}
	return out
}

func TestBulkPut(t *testing.T) {
	for _, bp := range bulkPuts {
		t.Run(bp.name, func(t *testing.T) {
			ctx := context.Background()
			b := mustOpen(t, "sqlite://"+filepath.Join(t.TempDir(), "cache.db"))
			old := cachetest.NewEntry("bulk-3")
			cachetest.MustPut(t, b, old, cachetest.NewEntry("other"))

			entries := bulkEntries(250)
			// The same key twice in one batch: the later one wins, as with Puts.
			dup := cachetest.SetBody(cachetest.NewEntry("bulk-10"), []byte("second"))
			entries = append(entries, dup)
			if err := bp.put(ctx, b, entries); err != nil {
				t.Fatal(err)
			}

			want := map[string]*cache.Entry{"other": cachetest.NewEntry("other")}
			for _, e := range entries {
				want[e.Key] = e
			}
			var bytes int64
			for key, w := range want {
				if d := cachetest.Diff(cachetest.MustGet(t, b, key), w); d != "" {
					t.Errorf("%s: %s", key, d)
				}
				bytes += int64(len(w.Body))
			}
			tot, err := b.Count(ctx, cache.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tot, (cache.Totals{Entries: int64(len(want)), Bytes: bytes}); got != want {
				t.Fatalf("Count = %+v, want %+v", got, want)
			}
			// The listing's order comes from the indexes Load rebuilds.
			page, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortSize, Desc: true}, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if got := page.Entries[0].Size; got != 249 {
				t.Fatalf("largest entry has %d bytes, want 249", got)
			}
			if page.Next == "" {
				t.Fatal("no next page")
			}
		})
	}
}

func TestBulkPutCapped(t *testing.T) {
	for _, bp := range bulkPuts {
		t.Run(bp.name, func(t *testing.T) {
			ctx := context.Background()
			b := mustOpen(t, "sqlite://"+filepath.Join(t.TempDir(), "cache.db")+"?max_size=1000")
			cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("big"), make([]byte, 100)))
			var entries []*cache.Entry
			for i := range 5 {
				e := cachetest.SetBody(cachetest.NewEntry("k"+strconv.Itoa(i)), make([]byte, 300))
				e.Created = cachetest.T0.Add(time.Duration(i) * time.Minute)
				entries = append(entries, e)
			}
			// Over the cap by itself: dropped, and the old "big" with it.
			entries = append(entries, cachetest.SetBody(cachetest.NewEntry("big"), make([]byte, 2000)))
			if err := bp.put(ctx, b, entries); err != nil {
				t.Fatal(err)
			}
			tot, err := b.Count(ctx, cache.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if tot.Bytes > 1000 || tot.Entries != 3 {
				t.Fatalf("Count = %+v, want 3 entries within the cap of 1000 bytes", tot)
			}
			if _, ok, _ := b.Get(ctx, "big"); ok {
				t.Fatal(`"big" is stored, want it dropped`)
			}
			// The least recently used go first: the newest three remain.
			for _, key := range []string{"k2", "k3", "k4"} {
				cachetest.MustGet(t, b, key)
			}
		})
	}
}

// TestLoadRollsBack stops a Load half-way: nothing of it is kept, and the
// indexes it dropped are back.
func TestLoadRollsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	b := mustOpen(t, "sqlite://"+path)
	cachetest.MustPut(t, b, cachetest.NewEntry("kept"))
	before := indexNames(t, path)
	if len(before) < 5 {
		t.Fatalf("indexes before = %v, want the migrations' indexes", before)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seq := func(yield func(*cache.Entry) bool) {
		for i, e := range bulkEntries(500) {
			if i == 300 {
				cancel()
			}
			if !yield(e) {
				return
			}
		}
	}
	if _, err := b.Load(ctx, seq); err == nil {
		t.Fatal("Load with a context cancelled half-way succeeded")
	}
	tot, err := b.Count(context.Background(), cache.Filter{})
	if err != nil || tot.Entries != 1 {
		t.Fatalf("Count = %+v, %v; want the 1 entry from before", tot, err)
	}
	if after := indexNames(t, path); !slices.Equal(after, before) {
		t.Fatalf("indexes after = %v, want %v", after, before)
	}
	// The writer connection still works.
	cachetest.MustPut(t, b, cachetest.NewEntry("after"))
}

func TestBulkPutClosed(t *testing.T) {
	b, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "cache.db"))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	ctx := context.Background()
	if err := b.PutMany(ctx, bulkEntries(1)); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("PutMany after Close = %v, want cache.ErrClosed", err)
	}
	if _, err := b.Load(ctx, slices.Values(bulkEntries(1))); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("Load after Close = %v, want cache.ErrClosed", err)
	}
}

// indexNames lists the entries table's indexes through a connection of its
// own.
func indexNames(tb testing.TB, path string) []string {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'entries' ORDER BY name`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			tb.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return names
}
