package memory_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

func TestBackend(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Backend {
		b := memory.New(0)
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestBackendCapped(t *testing.T) {
	cachetest.RunCapped(t, func(t *testing.T, maxBytes int64) cache.Backend {
		b := memory.New(maxBytes)
		t.Cleanup(func() { b.Close() })
		return b
	})
}

// TestGetCountsAsUse checks what the shared suite leaves to each backend:
// in memory a Get protects an entry from eviction.
func TestGetCountsAsUse(t *testing.T) {
	ctx := context.Background()
	b := memory.New(3000)
	defer b.Close()
	for i := range 3 {
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry(fmt.Sprintf("k%d", i)), make([]byte, 1000)))
	}
	cachetest.MustGet(t, b, "k0")
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k3"), make([]byte, 1000)))
	p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortURL}})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range p.Entries {
		keys = append(keys, e.Key)
	}
	if want := []string{"k0", "k2", "k3"}; !slices.Equal(keys, want) {
		t.Fatalf("after Get(k0) and an evicting Put: stored %v, want %v", keys, want)
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	m := memory.New(0)
	defer m.Close()
	for i := range 10_000 {
		e := cachetest.NewEntry(fmt.Sprintf("key-%05d", i))
		cachetest.SetBody(e, make([]byte, 1024))
		cachetest.MustPut(b, m, e)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok, err := m.Get(ctx, "key-04242"); !ok || err != nil {
			b.Fatalf("Get: %v, %v", ok, err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	ctx := context.Background()
	m := memory.New(0)
	defer m.Close()
	for i := range 1000 {
		cachetest.MustPut(b, m, cachetest.SetBody(cachetest.NewEntry(fmt.Sprintf("key-%04d", i)), make([]byte, 1024)))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok, err := m.Get(ctx, fmt.Sprintf("key-%04d", i%1000)); !ok || err != nil {
				b.Fatalf("Get: %v, %v", ok, err)
			}
			i++
		}
	})
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	m := memory.New(1 << 20)
	defer m.Close()
	e := cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, 1024))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.Key = fmt.Sprintf("key-%d", i%5000)
		if err := m.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}
