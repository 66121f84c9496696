package cachetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/cachegate/cachegate/cache"
)

func testCount(t *testing.T, b cache.Backend) {
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{}) {
		t.Fatalf("Count on an empty backend = %+v, want zero", tot)
	}
	putFixture(t, b)
	// 100+200+0+300+300+50+10+1000+1+300+300
	if tot, want := mustCount(t, b, cache.Filter{}), (cache.Totals{Entries: 11, Bytes: 2561}); tot != want {
		t.Fatalf("Count = %+v, want %+v", tot, want)
	}
	if tot, want := mustCount(t, b, cache.Filter{Upstream: "demo"}), (cache.Totals{Entries: 4, Bytes: 660}); tot != want {
		t.Fatalf("Count(demo) = %+v, want %+v", tot, want)
	}
	if tot := mustCount(t, b, cache.Filter{Upstream: "nope"}); tot != (cache.Totals{}) {
		t.Fatalf("Count(nope) = %+v, want zero", tot)
	}
}

func testDeleteMatching(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	entries := putFixture(t, b)
	steps := []struct {
		f    cache.Filter
		want int64
		left []string
	}{
		{cache.Filter{Upstream: "demo"}, 4, []string{"a", "b", "c", "h", "i", "j", "k"}},
		{cache.Filter{Upstream: "demo"}, 0, []string{"a", "b", "c", "h", "i", "j", "k"}},
		{cache.Filter{URL: "*/repos/*"}, 2, []string{"c", "h", "i", "j", "k"}},
		{cache.Filter{URL: "a_b"}, 1, []string{"c", "i", "j", "k"}},
		{cache.Filter{Freshness: cache.Fresh, Now: now, MinSize: 300}, 2, []string{"c", "i"}},
		{cache.Filter{Keys: []string{"c", "zz"}}, 1, []string{"i"}},
	}
	for _, s := range steps {
		n, err := b.DeleteMatching(ctx, s.f)
		if err != nil {
			t.Fatalf("DeleteMatching(%+v): %v", s.f, err)
		}
		if n != s.want {
			t.Fatalf("DeleteMatching(%+v) = %d, want %d", s.f, n, s.want)
		}
		got := keysOf(listAll(t, b, cache.Query{Sort: cache.Sort{Field: cache.SortURL}}))
		slices.Sort(got)
		if !slices.Equal(got, s.left) {
			t.Fatalf("after DeleteMatching(%+v) left %v, want %v", s.f, got, s.left)
		}
	}
	for _, e := range entries {
		if !slices.Contains(steps[len(steps)-1].left, e.Key) {
			assertMiss(t, b, e.Key)
		}
	}
}

func testDeleteMatchingAll(t *testing.T, b cache.Backend) {
	putFixture(t, b)
	n, err := b.DeleteMatching(context.Background(), cache.Filter{})
	if err != nil || n != 11 {
		t.Fatalf("DeleteMatching(empty) = %d, %v; want 11, nil", n, err)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{}) {
		t.Fatalf("Count after deleting all = %+v, want zero", tot)
	}
	assertMiss(t, b, "a")
}

func testDeleteExpired(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	putFixture(t, b)
	n, err := b.DeleteExpired(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("DeleteExpired(now) = %d, %v; want 3 (b, e, g), nil", n, err)
	}
	for _, k := range []string{"b", "e", "g"} {
		assertMiss(t, b, k)
	}
	for _, k := range []string{"a", "c", "d", "f", "h", "i", "j", "k"} {
		MustGet(t, b, k)
	}
	n, err = b.DeleteExpired(ctx, now)
	if err != nil || n != 0 {
		t.Fatalf("second DeleteExpired(now) = %d, %v; want 0, nil", n, err)
	}
	// A century on, only the never-expiring remain.
	n, err = b.DeleteExpired(ctx, T0.AddDate(100, 0, 0))
	if err != nil || n != 5 {
		t.Fatalf("DeleteExpired(+100y) = %d, %v; want 5, nil", n, err)
	}
	got := keysOf(listAll(t, b, cache.Query{Sort: cache.Sort{Field: cache.SortSize}}))
	if want := []string{"c", "f", "k"}; !slices.Equal(got, want) {
		t.Fatalf("left %v, want %v", got, want)
	}
}

func testClear(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	putFixture(t, b)
	if err := b.Clear(ctx); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{}) {
		t.Fatalf("Count after Clear = %+v, want zero", tot)
	}
	assertMiss(t, b, "a")
	p, err := b.List(ctx, cache.Query{})
	if err != nil || len(p.Entries) != 0 || p.Next != "" {
		t.Fatalf("List after Clear = %d entries, next %q, err %v; want nothing", len(p.Entries), p.Next, err)
	}
	// The backend stays usable.
	MustPut(t, b, NewEntry("again"))
	MustGet(t, b, "again")
	if err := b.Clear(ctx); err != nil {
		t.Fatalf("second Clear: %v", err)
	}
}

// testConcurrent has writers replace a few keys with internally consistent
// entries while readers check that every entry they see is whole: its body,
// size and header all name the same writer and round.
func testConcurrent(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	const workers, rounds, keys = 8, 50, 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for w := range workers {
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for r := range rounds {
				tag := fmt.Sprintf("w%d-r%d", w, r)
				e := NewEntry(fmt.Sprintf("k%d", (w+r)%keys))
				SetBody(e, []byte(tag+"|"+string(make([]byte, w*10))))
				e.Header.Set("X-Tag", tag)
				e.Hits = int64(len(e.Body))
				if err := b.Put(ctx, e); err != nil {
					errs <- fmt.Errorf("Put: %w", err)
					return
				}
				if r%10 == 0 {
					if err := b.RecordHits(ctx, []cache.Hit{{Key: e.Key, Count: 1, Last: T0}}); err != nil {
						errs <- fmt.Errorf("RecordHits: %w", err)
						return
					}
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			for r := range rounds {
				key := fmt.Sprintf("k%d", (w*3+r)%keys)
				e, ok, err := b.Get(ctx, key)
				if err != nil {
					errs <- fmt.Errorf("Get: %w", err)
					return
				}
				if !ok {
					continue
				}
				tag := e.Header.Get("X-Tag")
				if e.Key != key || e.Size != int64(len(e.Body)) || tag == "" || string(e.Body[:len(tag)]) != tag {
					errs <- fmt.Errorf("Get(%q) returned a torn entry: key %q, tag %q, size %d, body %q", key, e.Key, tag, e.Size, e.Body)
					return
				}
				if r%10 == 0 {
					if _, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortSize}}); err != nil {
						errs <- fmt.Errorf("List: %w", err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot.Entries != keys {
		t.Fatalf("Count after concurrent puts = %+v, want %d entries", tot, keys)
	}
}
