package tiered_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/mongo"
	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown()
	os.Exit(code)
}

// Every persistent backend behind the tier, as web opens them (Served):
// the tier behaves as a backend must and claims only the capabilities of
// the one behind it.
func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name string
		open func(t *testing.T) cache.Backend
	}{
		{"sqlite", func(t *testing.T) cache.Backend { return openSQLite(t) }},
		{"fs", func(t *testing.T) cache.Backend {
			b, err := fs.Open("file://" + t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
		{"memory", func(t *testing.T) cache.Backend { return memory.New(0) }},
		{"mongo", func(t *testing.T) cache.Backend {
			b, err := mongo.Open(context.Background(), mongotest.URI(t))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T) cache.Backend {
				b := tiered.New(c.open(t), 1<<20, time.Minute)
				t.Cleanup(func() { b.Close() })
				return b.Served()
			})
		})
	}
}

func TestConformanceWriteBehind(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Backend {
		b := tiered.New(openSQLite(t), 1<<20, time.Minute).WriteBehind(tiered.WriteBehindOptions{Window: tiered.DefaultWindow, OnError: func(key string, err error) { t.Errorf("store %s: %v", key, err) }})
		t.Cleanup(func() { b.Close() })
		return b.Served()
	})
}

// With bodies in files too (all of them: the minimum is one byte), under
// write-behind: the tier still behaves as a backend must.
func TestConformanceFileBodies(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Backend {
		b := tiered.New(openSQLite(t), 1<<20, time.Minute).FileBodies(t.TempDir(), 1).WriteBehind(tiered.WriteBehindOptions{Window: tiered.DefaultWindow, OnError: func(key string, err error) { t.Errorf("store %s: %v", key, err) }})
		t.Cleanup(func() { b.Close() })
		return b.Served()
	})
}

func TestWriteBehindStoresAndDeleteWins(t *testing.T) {
	ctx := context.Background()
	cold := memory.New(0)
	b := tiered.New(cold, 1<<20, time.Minute).WriteBehind(tiered.WriteBehindOptions{Window: tiered.DefaultWindow, MaxEntries: 1})
	for i := range 200 {
		key := fmt.Sprintf("k%d", i)
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry(key), []byte("v")))
		if i%2 == 0 {
			if _, err := b.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer b.Close()
	b.Flush(ctx)
	tot, _ := cold.Count(ctx, cache.Filter{})
	if tot.Entries != 100 {
		t.Fatalf("persistent backend holds %d entries after a flush, want the 100 not deleted", tot.Entries)
	}
	if _, ok, _ := cold.Get(ctx, "k0"); ok {
		t.Fatal("a deleted entry was stored after its delete")
	}
}

func openSQLite(t *testing.T) *sqlite.Backend {
	t.Helper()
	cold, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	return cold
}

// Past the TTL, a copy whose stamp matches the stored version is trusted
// again without reading the entry: the same shared entry comes back. A
// new version stored around the tier, or a delete, shows.
func TestUnchangedCopyIsRenewedByItsStamp(t *testing.T) {
	ctx := context.Background()
	cold := openSQLite(t)
	const ttl = 30 * time.Millisecond
	b := tiered.New(cold, 1<<20, ttl)
	defer b.Close()
	now := time.Unix(1_700_000_000, 0)
	tiered.SetNow(b, func() time.Time { return now })
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), []byte("one")))
	first, _, _ := b.Peek(ctx, "k")
	for range 3 {
		now = now.Add(ttl + 10*time.Millisecond)
		if _, ok := b.PeekMemory("k"); ok {
			t.Fatal("the copy is trusted in memory past its TTL")
		}
		if e, ok, err := b.Peek(ctx, "k"); err != nil || !ok || e != first {
			t.Fatalf("past the TTL an unchanged copy was not renewed: %p %v %v, want %p", e, ok, err, first)
		}
		if _, ok := b.PeekMemory("k"); !ok {
			t.Fatal("a renewed copy is not trusted in memory for another TTL")
		}
	}

	two := cachetest.SetBody(cachetest.NewEntry("k"), []byte("two"))
	two.Created = first.Created.Add(time.Nanosecond) // a new version, even at the same size and expiry
	two.Expires = first.Expires
	if err := cold.Put(ctx, two); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl + 10*time.Millisecond)
	if e, ok, _ := b.Peek(ctx, "k"); !ok || string(e.Body) != "two" {
		t.Fatalf("a version stored around the tier did not show past the TTL: %q", e.Body)
	}
	if _, err := cold.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ttl + 10*time.Millisecond)
	if _, ok, _ := b.Peek(ctx, "k"); ok {
		t.Fatal("an entry deleted around the tier is still served")
	}
}

func TestTierIsBounded(t *testing.T) {
	b := tiered.New(memory.New(0), 10_000, 0)
	defer b.Close()
	for i := range 100 {
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry(string(rune('a'+i%26))+string(rune('a'+i/26))), make([]byte, 1000)))
	}
	if got := b.HotBytes(); got > 10_000 {
		t.Fatalf("tier holds %d bytes, cap 10000", got)
	}
	// Small bodies count what an entry costs, not just their bytes: a cap
	// of 10,000 holds far fewer than a thousand 10-byte entries.
	small := tiered.New(memory.New(0), 10_000, 0)
	defer small.Close()
	held := 0
	for i := range 1000 {
		key := fmt.Sprintf("s%d", i)
		cachetest.MustPut(t, small, cachetest.SetBody(cachetest.NewEntry(key), make([]byte, 10)))
	}
	for i := range 1000 {
		if _, ok := small.PeekMemory(fmt.Sprintf("s%d", i)); ok {
			held++
		}
	}
	if held == 0 || held > 10_000/512 {
		t.Fatalf("a 10,000-byte tier holds %d 10-byte entries; each costs over 512 bytes of memory", held)
	}
	// Evicted from the tier is not evicted from the cache.
	if tot, _ := b.Count(context.Background(), cache.Filter{}); tot.Entries != 100 {
		t.Fatalf("persistent backend holds %d entries, want 100", tot.Entries)
	}
}

func TestPeekSharesGetCopies(t *testing.T) {
	ctx := context.Background()
	b := tiered.New(memory.New(0), 1<<20, 0)
	defer b.Close()
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), []byte("body")))
	p1, _, _ := b.Peek(ctx, "k")
	p2, _, _ := b.Peek(ctx, "k")
	if p1 != p2 {
		t.Fatal("Peek copied the entry")
	}
	g, _, _ := b.Get(ctx, "k")
	g.Body[0] = 'X'
	if p, _, _ := b.Peek(ctx, "k"); string(p.Body) != "body" {
		t.Fatal("modifying a Get result changed the stored entry")
	}
}
