package tiered

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// A hit keeps its entry in the tier: the tier evicts the least recently
// used, to within touchEvery.
func TestHitsKeepEntriesInTheTier(t *testing.T) {
	entry := func(key string) *cache.Entry {
		return cachetest.SetBody(cachetest.NewEntry(key), make([]byte, 1000))
	}
	// Room for exactly ten such entries.
	b := New(memory.New(0), 10*entry("a").Footprint(), 0)
	defer b.Close()
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	put := func(key string) {
		t.Helper()
		cachetest.MustPut(t, b, entry(key))
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

// A copy older than the TTL is read again from the persistent backend, so
// writes and deletes around the tier (another gateway's) show within it.
// SQLite gives stamps (the tier renews an unchanged copy), memory not.
func TestWritesAroundTheTierShowAfterTTL(t *testing.T) {
	t.Run("memory", func(t *testing.T) { writesAroundTheTierShowAfterTTL(t, memory.New(0)) })
	t.Run("sqlite", func(t *testing.T) {
		cold, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
		if err != nil {
			t.Fatal(err)
		}
		writesAroundTheTierShowAfterTTL(t, cold)
	})
}

func writesAroundTheTierShowAfterTTL(t *testing.T, cold cache.Backend) {
	ctx := context.Background()
	const ttl = 50 * time.Millisecond
	b := New(cold, 1<<20, ttl)
	defer b.Close()
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), []byte("one")))
	// Another writer changes the persistent backend behind the tier, with
	// a response of its own (received later: a new stamp).
	two := cachetest.SetBody(cachetest.NewEntry("k"), []byte("two"))
	two.Created = two.Created.Add(time.Second)
	if err := cold.Put(ctx, two); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl - time.Millisecond)
	if e := cachetest.MustGet(t, b, "k"); string(e.Body) != "one" {
		t.Fatalf("within the TTL the hot copy answers, got %q", e.Body)
	}
	now = now.Add(2 * time.Millisecond)
	if e := cachetest.MustGet(t, b, "k"); string(e.Body) != "two" {
		t.Fatalf("after the TTL the persistent copy answers, got %q", e.Body)
	}
	// A delete around the tier shows too.
	if _, err := cold.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl + time.Millisecond)
	if _, ok, _ := b.Get(ctx, "k"); ok {
		t.Fatal("an entry deleted behind the tier is still served")
	}
}
