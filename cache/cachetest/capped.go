package cachetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// RunCapped runs the size-cap suite. open must return a new, empty backend
// that implements cache.Sizer and keeps the total body bytes of its entries
// at or below maxBytes, evicting least recently used entries first.
//
// "Used" here means put or reported by RecordHits; the suite gives every
// entry a distinct Created time in put order, so a backend may rank entries
// by the later of LastHit and Created, as the SQLite backend does. Whether a
// Get also counts as a use is up to the backend (memory does; SQLite does
// not, so that a hit never writes) and is tested by the backend itself.
//
// An entry larger than the whole cap must not be stored and must not make
// Put fail.
func RunCapped(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend)
	}{
		{"MaxBytes", testCapMaxBytes},
		{"StaysUnderCap", testCapStaysUnder},
		{"EvictsLeastRecentlyUsed", testCapLRU},
		{"ReplaceCountsOnce", testCapReplace},
		{"DeleteFreesRoom", testCapDelete},
		{"TooLarge", testCapTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open) })
	}
}

// sizedEntry is an entry of n body bytes created i minutes after T0.
func sizedEntry(key string, i, n int) *cache.Entry {
	e := SetBody(NewEntry(key), make([]byte, n))
	e.Created = T0.Add(time.Duration(i) * time.Minute)
	e.RequestTime = e.Created
	return e
}

// storedKeys lists every stored key in key order without touching entries
// the way a Get would.
func storedKeys(tb testing.TB, b cache.Backend) []string {
	tb.Helper()
	keys := keysOf(listAll(tb, b, cache.Query{Sort: cache.Sort{Field: cache.SortURL}, Limit: cache.MaxLimit}))
	slices.Sort(keys)
	return keys
}

func testCapMaxBytes(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	b := open(t, 12345)
	s, ok := b.(cache.Sizer)
	if !ok {
		t.Fatalf("%T does not implement cache.Sizer", b)
	}
	if got := s.MaxBytes(); got != 12345 {
		t.Fatalf("MaxBytes() = %d, want 12345", got)
	}
}

func testCapStaysUnder(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	const limit = 10_000
	b := open(t, limit)
	var put int64
	for i := range 60 {
		e := sizedEntry(fmt.Sprintf("k%02d", i), i, 700+i*13)
		MustPut(t, b, e)
		put += e.Size
		tot := mustCount(t, b, cache.Filter{})
		if tot.Bytes > limit {
			t.Fatalf("after put %d: %d bytes stored, cap is %d", i, tot.Bytes, limit)
		}
		if put > limit && tot.Bytes < limit-2*(700+60*13) {
			t.Fatalf("after put %d: only %d bytes stored under a cap of %d; evicting too much", i, tot.Bytes, limit)
		}
		MustGet(t, b, e.Key) // the newest entry is always kept
	}
	assertMiss(t, b, "k00") // the oldest went first
}

func testCapLRU(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	ctx := context.Background()
	b := open(t, 5000)
	for i := range 5 {
		MustPut(t, b, sizedEntry(fmt.Sprintf("k%d", i), i, 1000))
	}
	// k0 is the oldest put but the most recently hit.
	if err := b.RecordHits(ctx, []cache.Hit{{Key: "k0", Count: 1, Last: T0.Add(10 * time.Minute)}}); err != nil {
		t.Fatalf("RecordHits: %v", err)
	}
	MustPut(t, b, sizedEntry("k5", 11, 1000))
	// Presence is checked by listing, because a Get may count as a use.
	if got, want := storedKeys(t, b), []string{"k0", "k2", "k3", "k4", "k5"}; !slices.Equal(got, want) {
		t.Fatalf("after one eviction: stored %v, want %v", got, want)
	}
	// Room for two more pushes out the next two least recently used.
	MustPut(t, b, sizedEntry("k6", 12, 2000))
	if got, want := storedKeys(t, b), []string{"k0", "k4", "k5", "k6"}; !slices.Equal(got, want) {
		t.Fatalf("after evicting two: stored %v, want %v", got, want)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{Entries: 4, Bytes: 5000}) {
		t.Fatalf("Count = %+v, want 4 entries, 5000 bytes", tot)
	}
}

func testCapReplace(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	b := open(t, 5000)
	MustPut(t, b, sizedEntry("a", 0, 1000), sizedEntry("b", 1, 1000), sizedEntry("c", 2, 1000))
	for i := range 20 {
		MustPut(t, b, sizedEntry("r", 3+i, 1000+i%3))
	}
	for _, k := range []string{"a", "b", "c", "r"} {
		MustGet(t, b, k)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{Entries: 4, Bytes: 4001}) {
		t.Fatalf("Count = %+v, want 4 entries, 4001 bytes", tot)
	}
}

func testCapDelete(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	ctx := context.Background()
	b := open(t, 5000)
	for i := range 5 {
		MustPut(t, b, sizedEntry(fmt.Sprintf("k%d", i), i, 1000))
	}
	if _, err := b.Delete(ctx, "k1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := b.DeleteMatching(ctx, cache.Filter{Keys: []string{"k2"}}); err != nil {
		t.Fatalf("DeleteMatching: %v", err)
	}
	MustPut(t, b, sizedEntry("k5", 5, 1000), sizedEntry("k6", 6, 1000))
	for _, k := range []string{"k0", "k3", "k4", "k5", "k6"} {
		MustGet(t, b, k) // deleted bytes were given back, so nothing was evicted
	}
	if err := b.Clear(ctx); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	for i := range 5 {
		MustPut(t, b, sizedEntry(fmt.Sprintf("n%d", i), 10+i, 1000))
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{Entries: 5, Bytes: 5000}) {
		t.Fatalf("Count after Clear and refill = %+v, want 5 entries, 5000 bytes", tot)
	}
}

func testCapTooLarge(t *testing.T, open func(t *testing.T, maxBytes int64) cache.Backend) {
	b := open(t, 5000)
	MustPut(t, b, sizedEntry("small", 0, 1000))
	MustPut(t, b, sizedEntry("huge", 1, 5001))
	assertMiss(t, b, "huge")
	if tot := mustCount(t, b, cache.Filter{}); tot.Bytes > 5000 {
		t.Fatalf("Count = %+v, over the cap", tot)
	}
	MustPut(t, b, sizedEntry("exact", 2, 5000)) // exactly the cap fits
	MustGet(t, b, "exact")
}
