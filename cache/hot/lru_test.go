package hot

import (
	"context"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// A hit keeps its entry in the tier: the tier evicts the least recently
// used, to within touchEvery.
func TestHitsKeepEntriesInTheTier(t *testing.T) {
	b := New(memory.New(0), 10_000, 0)
	defer b.Close()
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	put := func(key string) {
		t.Helper()
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry(key), make([]byte, 1000)))
	}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		put(k) // the tier is full: "a" is the least recently used
	}
	now = now.Add(2 * touchEvery)
	if _, ok := b.PeekMemory("a"); !ok {
		t.Fatal("a is not in the tier")
	}
	put("k")
	if _, ok := b.PeekMemory("a"); !ok {
		t.Error("the entry just hit was evicted")
	}
	if _, ok := b.PeekMemory("b"); ok {
		t.Error("b, the least recently used, is still in the tier")
	}
	// Evicted from the tier, not from the cache.
	if _, ok, _ := b.Get(context.Background(), "b"); !ok {
		t.Error("b is gone from the persistent backend")
	}
}
