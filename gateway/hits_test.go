package gateway

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// Hits recorded concurrently land in random shards; a flush adds them up
// per key and keeps the latest time.
func TestHitRecorderAddsShardsUp(t *testing.T) {
	ctx := context.Background()
	b := memory.New(0)
	defer b.Close()
	for _, k := range []string{"a", "b"} {
		cachetest.MustPut(t, b, cachetest.NewEntry(k))
	}
	h := newHitRecorder(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Unix(1_700_000_000, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				h.record("a", t0.Add(time.Duration(g*100+i)*time.Second))
			}
		}()
	}
	wg.Wait()
	h.record("b", t0)
	h.flush(ctx)
	h.flush(ctx) // nothing pending: no second count
	a, _, _ := b.Get(ctx, "a")
	if a.Hits != 800 || !a.LastHit.Equal(t0.Add(799*time.Second)) {
		t.Errorf("a: %d hits, last %v; want 800, %v", a.Hits, a.LastHit, t0.Add(799*time.Second))
	}
	if e, _, _ := b.Get(ctx, "b"); e.Hits != 1 {
		t.Errorf("b: %d hits, want 1", e.Hits)
	}
}
