package tiered_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// clock is a time the test moves by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gated is a memory backend whose Puts each announce their key on entered
// and then wait for a value on release (or for open to close), so a test
// holds the writer in the middle of a store for as long as it likes.
type gated struct {
	*memory.Backend
	entered  chan string
	release  chan struct{}
	opened   chan struct{}
	openOnce sync.Once
	// only, if set, names the keys held; the others pass at once.
	only map[string]bool
}

func newGated() *gated {
	return &gated{Backend: memory.New(0), entered: make(chan string, 16), release: make(chan struct{}), opened: make(chan struct{})}
}

func (g *gated) Put(ctx context.Context, e *cache.Entry) error {
	if g.only != nil && !g.only[e.Key] {
		return g.Backend.Put(ctx, e)
	}
	g.entered <- e.Key
	select {
	case <-g.release:
	case <-g.opened:
	}
	return g.Backend.Put(ctx, e)
}

// open lets every store through from now on.
func (g *gated) open() { g.openOnce.Do(func() { close(g.opened) }) }

// gatedBatch is gated with batches (cache.BatchPutter), as SQLite has: a
// Put that waits waits for the writer instead of storing its entry itself.
type gatedBatch struct{ *gated }

func (g gatedBatch) PutMany(ctx context.Context, entries []*cache.Entry) error {
	for _, e := range entries {
		g.entered <- e.Key
	}
	select {
	case <-g.release:
	case <-g.opened:
	}
	for _, e := range entries {
		if err := g.Backend.Put(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// warmUp stores one entry through b, so that the writer has a pace to
// judge its queue by (with a clock that stands still: no time per entry).
// The gate must let the key "warm" through.
func warmUp(tb testing.TB, b *tiered.Backend) {
	tb.Helper()
	cachetest.MustPut(tb, b, entryOf("warm", 1))
	b.Flush(context.Background())
}

func entryOf(key string, size int) *cache.Entry {
	return cachetest.SetBody(cachetest.NewEntry(key), make([]byte, size))
}

// A Put returns before its write only while the queue is within its
// bounds: younger than half the window, fewer bytes and entries than its
// caps. Past any of them it waits for its own write, which is then stored
// when it returns. Before the writer has a pace, only one write is let
// ahead of its store.
func TestWriteBehindWaitsPastItsBounds(t *testing.T) {
	for _, c := range []struct {
		name     string
		opts     tiered.WriteBehindOptions
		first    int // body size of an entry being stored, 0 for none
		advance  time.Duration
		second   int
		cold     bool // no write measured before
		wantWait bool
	}{
		{name: "a young queue answers at once", opts: tiered.WriteBehindOptions{Window: 200 * time.Millisecond}, first: 10, advance: 99 * time.Millisecond, second: 10},
		{name: "a write older than half the window", opts: tiered.WriteBehindOptions{Window: 200 * time.Millisecond}, first: 10, advance: 100 * time.Millisecond, second: 10, wantWait: true},
		{name: "within the byte cap", opts: tiered.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, first: 500, second: 500},
		{name: "past the byte cap", opts: tiered.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, first: 500, second: 501, wantWait: true},
		{name: "a body larger than the byte cap alone", opts: tiered.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, second: 1001, wantWait: true},
		{name: "past the entry cap", opts: tiered.WriteBehindOptions{Window: time.Second, MaxEntries: 1}, first: 10, second: 10, wantWait: true},
		{name: "no pace yet", opts: tiered.WriteBehindOptions{Window: time.Second}, cold: true, first: 10, second: 10, wantWait: true},
	} {
		for _, batches := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/batches=%v", c.name, batches), func(t *testing.T) {
				ctx := context.Background()
				clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
				gate := newGated()
				var cold cache.Backend = gate
				if batches {
					cold = gatedBatch{gate}
				}
				c.opts.Now = clk.Now
				b := tiered.New(cold, 1<<20, 0).WriteBehind(c.opts)
				defer b.Close()
				defer gate.open()
				waiting := make(chan struct{}, 1)
				tiered.OnWait(b, func() { waiting <- struct{}{} })
				gate.only = map[string]bool{"first": true, "second": true}
				if !c.cold {
					warmUp(t, b)
				}

				if c.first > 0 {
					cachetest.MustPut(t, b, entryOf("first", c.first)) // an empty queue: returns at once
					if got := <-gate.entered; got != "first" {
						t.Fatalf("the writer stores %q, want first", got)
					}
				}
				clk.Advance(c.advance)
				done := make(chan error, 1)
				go func() { done <- b.Put(ctx, entryOf("second", c.second)) }()
				select {
				case err := <-done:
					if err != nil {
						t.Fatal(err)
					}
					if c.wantWait {
						t.Fatal("Put returned before its write")
					}
					if n, bytes := b.Queued(); n == 0 || bytes < int64(c.second) {
						t.Fatalf("after an early Put the queue holds %d entries, %d bytes; want the entry in it", n, bytes)
					}
				case <-waiting:
					if !c.wantWait {
						t.Fatal("Put waits for its write within the bounds")
					}
					gate.open()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
					if _, ok, _ := gate.Backend.Get(ctx, "second"); !ok {
						t.Fatal("a Put that waited returned before its entry was stored")
					}
				}
			})
		}
	}
}

// After slow stores, a queue that the writer's recent pace would take
// more than half the window to store makes the next Put wait, even while
// every write queued is young.
func TestWriteBehindWaitsWhenTheWriterIsSlow(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	gate := newGated()
	b := tiered.New(gate, 1<<20, 0).WriteBehind(tiered.WriteBehindOptions{Window: 200 * time.Millisecond, Now: clk.Now})
	defer b.Close()
	defer gate.open()
	waiting := make(chan struct{}, 1)
	tiered.OnWait(b, func() { waiting <- struct{}{} })

	cachetest.MustPut(t, b, entryOf("slow", 10))
	<-gate.entered
	clk.Advance(80 * time.Millisecond) // the store takes 80ms
	gate.release <- struct{}{}
	b.Flush(ctx)

	cachetest.MustPut(t, b, entryOf("one", 10)) // one store at 80ms: within 100ms
	<-gate.entered                              // held: still queued
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, entryOf("two", 10)) }() // two: 160ms
	select {
	case <-done:
		t.Fatal("Put returned before its write behind a queue the writer needs 160ms for")
	case <-waiting:
	}
	gate.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := gate.Backend.Get(ctx, "two"); !ok {
		t.Fatal("a Put that waited returned before its entry was stored")
	}
}

// failing is a memory backend whose stores fail.
type failing struct{ *memory.Backend }

var errDiskFull = errors.New("disk full")

func (failing) Put(context.Context, *cache.Entry) error { return errDiskFull }

// A store that fails drops the hot copy; the Put that waited for it gets
// the error, a store nobody waited for goes to OnError.
func TestWriteBehindReportsFailedStoresOnce(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var reported []string
	b := tiered.New(failing{memory.New(0)}, 1<<20, 0).WriteBehind(tiered.WriteBehindOptions{
		Window: time.Second, MaxBytes: 100,
		OnError: func(key string, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, key)
		},
	})
	defer b.Close()
	if err := b.Put(ctx, entryOf("behind", 10)); err != nil {
		t.Fatalf("an early Put returned %v", err)
	}
	if err := b.Put(ctx, entryOf("waited", 200)); !errors.Is(err, errDiskFull) {
		t.Fatalf("a Put that waited for a failed store returned %v, want %v", err, errDiskFull)
	}
	b.Flush(ctx)
	mu.Lock()
	got := reported
	mu.Unlock()
	if len(got) != 1 || got[0] != "behind" {
		t.Fatalf("OnError was told of %q, want [behind]", got)
	}
	for _, key := range []string{"behind", "waited"} {
		if _, ok := b.PeekMemory(key); ok {
			t.Errorf("%s: the hot copy of a failed store is still served", key)
		}
	}
}

// A window of 0 writes every Put through.
func TestWriteBehindWindowZeroWritesThrough(t *testing.T) {
	ctx := context.Background()
	cold := memory.New(0)
	b := tiered.New(cold, 1<<20, 0).WriteBehind(tiered.WriteBehindOptions{Window: 0})
	defer b.Close()
	cachetest.MustPut(t, b, entryOf("k", 10))
	if _, ok, _ := cold.Get(ctx, "k"); !ok {
		t.Fatal("with a window of 0 Put returned before the entry was stored")
	}
}

// Many keys, each written over and over by its own goroutine (half of
// them deleted at the end), through a queue small enough that most Puts
// wait and store their entry themselves beside the writer: once every Put
// returned and a Flush, the persistent backend holds each key's last
// version, and none of the deleted keys. An older write never lands after
// a newer one of its key.
func TestWriteBehindKeepsTheLatestVersion(t *testing.T) {
	for _, c := range []struct {
		name string
		cold func() cache.Backend
	}{
		{"one by one", func() cache.Backend { return memory.New(0) }},
		{"batches", func() cache.Backend { return batchingMemory{memory.New(0)} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			cold := c.cold()
			b := tiered.New(cold, 1<<20, 0).WriteBehind(tiered.WriteBehindOptions{Window: time.Second, MaxEntries: 4})
			defer b.Close()
			const keys, versions = 16, 50
			var wg sync.WaitGroup
			for k := range keys {
				wg.Add(1)
				go func() {
					defer wg.Done()
					key := fmt.Sprintf("k%d", k)
					for v := range versions {
						if err := b.Put(ctx, cachetest.SetBody(cachetest.NewEntry(key), []byte(fmt.Sprint(v)))); err != nil {
							t.Error(err)
							return
						}
					}
					if k%2 == 1 {
						if _, err := b.Delete(ctx, key); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			b.Flush(ctx)
			for k := range keys {
				key := fmt.Sprintf("k%d", k)
				e, ok, err := cold.Get(ctx, key)
				switch {
				case err != nil:
					t.Fatal(err)
				case k%2 == 1 && ok:
					t.Errorf("%s was deleted last, yet is stored (%q)", key, e.Body)
				case k%2 == 0 && (!ok || string(e.Body) != fmt.Sprint(versions-1)):
					t.Errorf("%s: stored %v %q, want the last version %d", key, ok, e.Body, versions-1)
				}
			}
			if n, bytes := b.Queued(); n != 0 || bytes != 0 {
				t.Errorf("after a Flush %d entries (%d bytes) are still queued", n, bytes)
			}
		})
	}
}

// batchingMemory is a memory backend with batches, as SQLite has.
type batchingMemory struct{ *memory.Backend }

func (m batchingMemory) PutMany(ctx context.Context, entries []*cache.Entry) error {
	for _, e := range entries {
		if err := m.Put(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// An older write of a key that the writer took but had not started when a
// newer one of the key was stored (by a Put that waited) is never stored
// after it.
func TestWriteBehindNeverStoresAnOlderVersionLast(t *testing.T) {
	ctx := context.Background()
	gate := newGated()
	gate.only = map[string]bool{"x": true, "a": true, "b": true, "c": true, "d": true}
	b := tiered.New(gate, 1<<20, 0).WriteBehind(tiered.WriteBehindOptions{Window: time.Minute, MaxBytes: 1000})
	defer b.Close()
	defer gate.open()

	warmUp(t, b)
	cachetest.MustPut(t, b, entryOf("x", 1))
	<-gate.entered // the writer holds x
	for _, k := range []string{"a", "b", "c", "d"} {
		cachetest.MustPut(t, b, entryOf(k, 1))
	}
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), []byte("old")))
	gate.release <- struct{}{} // x is stored; the next batch is a, b, c, d, k
	for range 4 {
		<-gate.entered // a, b, c and d take every slot: k waits for one
	}
	// Too large to wait in the queue: this Put stores the new version itself.
	newer := cachetest.SetBody(cachetest.NewEntry("k"), append([]byte("new"), make([]byte, 1000)...))
	cachetest.MustPut(t, b, newer)
	gate.open()
	b.Flush(ctx)
	e, ok, err := gate.Backend.Get(ctx, "k")
	if err != nil || !ok {
		t.Fatalf("k is not stored: %v", err)
	}
	if got := string(e.Body[:min(3, len(e.Body))]); got != "new" {
		t.Fatalf("stored %q..., want the new version", got)
	}
}
