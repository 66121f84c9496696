package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

func openTemp(tb testing.TB, name string) (*Backend, string) {
	tb.Helper()
	dsn := "sqlite://" + filepath.Join(tb.TempDir(), name)
	b, err := Open(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b, dsn
}

// count runs a COUNT query on the reader.
func count(tb testing.TB, b *Backend, query string) int {
	tb.Helper()
	var n int
	if err := b.reader.Get(&n, query); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// waitSwept waits until no row is marked deleted, then checks that every
// remaining row is live and has its body.
func waitSwept(tb testing.TB, b *Backend, live int) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for count(tb, b, `SELECT COUNT(*) FROM entries WHERE deleted = 1`) > 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("deleted rows still there after 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := count(tb, b, `SELECT COUNT(*) FROM entries`); got != live {
		tb.Fatalf("%d rows in entries after the sweep, want %d", got, live)
	}
	if got := count(tb, b, `SELECT COUNT(*) FROM bodies`); got != live {
		tb.Fatalf("%d rows in bodies after the sweep, want %d", got, live)
	}
}

// TestDeletesAreSwept checks that every kind of delete only marks rows,
// which reads no longer see, and that the sweeper then removes them with
// their bodies, in batches.
func TestDeletesAreSwept(t *testing.T) {
	ctx := context.Background()
	b, _ := openTemp(t, "sweep.db")
	var entries []*cache.Entry
	for i := range 3*sweepBatchRows + 7 {
		e := cachetest.NewEntry(fmt.Sprintf("k%04d", i))
		if i%2 == 0 {
			e.Expires = cachetest.T0.Add(-time.Minute)
		}
		entries = append(entries, e)
	}
	if err := b.PutMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	expired := (len(entries) + 1) / 2
	if n, err := b.DeleteExpired(ctx, cachetest.T0); err != nil || n != int64(expired) {
		t.Fatalf("DeleteExpired = %d, %v; want %d", n, err, expired)
	}
	if ok, err := b.Delete(ctx, "k0001"); err != nil || !ok {
		t.Fatalf("Delete = %v, %v; want true", ok, err)
	}
	if ok, err := b.Delete(ctx, "k0000"); err != nil || ok {
		t.Fatalf("Delete of an expired entry = %v, %v; want false: it is gone already", ok, err)
	}
	if n, err := b.DeleteMatching(ctx, cache.Filter{Keys: []string{"k0003", "k0004", "k0005"}}); err != nil || n != 2 {
		t.Fatalf("DeleteMatching = %d, %v; want 2", n, err)
	}
	live := len(entries) - expired - 3
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot.Entries != int64(live) {
		t.Fatalf("Count = %+v, %v; want %d entries", tot, err, live)
	}
	waitSwept(t, b, live)
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot.Entries != int64(live) {
		t.Fatalf("Count after the sweep = %+v, %v; want %d entries", tot, err, live)
	}
	cachetest.MustGet(t, b, "k0007")
}

// markDeleted marks the entry under key deleted behind the backend's back,
// so that the sweeper is not woken and the row stays.
func markDeleted(tb testing.TB, b *Backend, key string) {
	tb.Helper()
	if _, err := b.writer.Exec(markByKey, key); err != nil {
		tb.Fatal(err)
	}
}

// TestPutOverDeletedRow stores an entry again over its row marked deleted:
// the row becomes the new entry, whole, and the totals count it again.
func TestPutOverDeletedRow(t *testing.T) {
	ctx := context.Background()
	b, _ := openTemp(t, "revive.db")
	old := cachetest.SetBody(cachetest.NewEntry("k"), []byte("old body"))
	old.Hits = 7
	cachetest.MustPut(t, b, old, cachetest.NewEntry("other"))
	markDeleted(t, b, "k")
	if _, ok, err := b.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("Get of a deleted entry = %v, %v; want a miss", ok, err)
	}
	if err := b.RecordHits(ctx, []cache.Hit{{Key: "k", Count: 5, Last: cachetest.T0}}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, `SELECT hits FROM entries WHERE key = 'k'`); n != 7 {
		t.Fatalf("hits of the deleted row = %d, want 7: RecordHits ignores deleted rows", n)
	}

	for _, put := range []struct {
		name string
		put  func(*cache.Entry) error
	}{
		{"Put", func(e *cache.Entry) error { return b.Put(ctx, e) }},
		{"PutMany", func(e *cache.Entry) error { return b.PutMany(ctx, []*cache.Entry{e}) }},
	} {
		t.Run(put.name, func(t *testing.T) {
			markDeleted(t, b, "k")
			e := cachetest.SetBody(cachetest.NewEntry("k"), []byte("the new body, longer"))
			if err := put.put(e); err != nil {
				t.Fatal(err)
			}
			if d := cachetest.Diff(cachetest.MustGet(t, b, "k"), e); d != "" {
				t.Fatalf("after storing over the deleted row: %s", d)
			}
			want := cache.Totals{Entries: 2, Bytes: e.Size + cachetest.NewEntry("other").Size}
			if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot != want {
				t.Fatalf("Count = %+v, %v; want %+v", tot, err, want)
			}
			if n := count(t, b, `SELECT COUNT(*) FROM entries`); n != 2 {
				t.Fatalf("%d rows, want 2: the row is reused", n)
			}
		})
	}
}

// TestSweepResumesAfterReopen leaves deleted rows behind at Close: the
// next Open sweeps them.
func TestSweepResumesAfterReopen(t *testing.T) {
	b, dsn := openTemp(t, "resume.db")
	for _, k := range []string{"a", "b", "c"} {
		cachetest.MustPut(t, b, cachetest.NewEntry(k))
	}
	markDeleted(t, b, "a")
	markDeleted(t, b, "b")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitSwept(t, b, 1)
	cachetest.MustGet(t, b, "c")
}

// TestVacuumSweepsFirst checks that Vacuum removes the deleted rows before
// it rebuilds the file, so that their space is given back too.
func TestVacuumSweepsFirst(t *testing.T) {
	b, _ := openTemp(t, "vacuum.db")
	for i := range 2*sweepBatchRows + 1 {
		cachetest.MustPut(t, b, cachetest.NewEntry(fmt.Sprintf("k%04d", i)))
	}
	for i := range 2*sweepBatchRows + 1 {
		markDeleted(t, b, fmt.Sprintf("k%04d", i))
	}
	if err := b.Vacuum(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := count(t, b, `SELECT COUNT(*) FROM entries`); n != 0 {
		t.Fatalf("%d rows left after Vacuum, want 0", n)
	}
}

// TestClearResetsTotals checks Clear with rows marked deleted among the
// live ones: no trigger counts removed rows out, Clear zeroes the totals.
func TestClearResetsTotals(t *testing.T) {
	ctx := context.Background()
	b, _ := openTemp(t, "clear.db")
	for _, k := range []string{"a", "b", "c"} {
		cachetest.MustPut(t, b, cachetest.NewEntry(k))
	}
	markDeleted(t, b, "a")
	if err := b.Clear(ctx); err != nil {
		t.Fatal(err)
	}
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot != (cache.Totals{}) {
		t.Fatalf("Count after Clear = %+v, %v; want zero", tot, err)
	}
	cachetest.MustPut(t, b, cachetest.NewEntry("d"))
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot.Entries != 1 {
		t.Fatalf("Count after Clear and a Put = %+v, %v; want 1 entry", tot, err)
	}
}
