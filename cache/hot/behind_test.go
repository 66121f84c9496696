package hot_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/cache/hot"
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
	entered chan string
	release chan struct{}
	open    chan struct{}
	// during, if set, runs while a Put is held (before it waits).
	during func()
}

func newGated() *gated {
	return &gated{Backend: memory.New(0), entered: make(chan string, 16), release: make(chan struct{}), open: make(chan struct{})}
}

func (g *gated) Put(ctx context.Context, e *cache.Entry) error {
	g.entered <- e.Key
	select {
	case <-g.release:
	case <-g.open:
	}
	return g.Backend.Put(ctx, e)
}

func entryOf(key string, size int) *cache.Entry {
	return cachetest.SetBody(cachetest.NewEntry(key), make([]byte, size))
}

// A Put returns before its write only while the queue is within its
// bounds: younger than half the window, fewer bytes and entries than its
// caps. Past any of them it waits for its own write, which is then stored
// when it returns.
func TestWriteBehindWaitsPastItsBounds(t *testing.T) {
	for _, c := range []struct {
		name     string
		opts     hot.WriteBehindOptions
		first    int // body size of an entry being stored, 0 for none
		advance  time.Duration
		second   int
		wantWait bool
	}{
		{name: "a young queue answers at once", opts: hot.WriteBehindOptions{Window: 200 * time.Millisecond}, first: 10, advance: 99 * time.Millisecond, second: 10},
		{name: "a write older than half the window", opts: hot.WriteBehindOptions{Window: 200 * time.Millisecond}, first: 10, advance: 100 * time.Millisecond, second: 10, wantWait: true},
		{name: "within the byte cap", opts: hot.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, first: 500, second: 500},
		{name: "past the byte cap", opts: hot.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, first: 500, second: 501, wantWait: true},
		{name: "a body larger than the byte cap alone", opts: hot.WriteBehindOptions{Window: time.Second, MaxBytes: 1000}, second: 1001, wantWait: true},
		{name: "past the entry cap", opts: hot.WriteBehindOptions{Window: time.Second, MaxEntries: 1}, first: 10, second: 10, wantWait: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			cold := newGated()
			c.opts.Now = clk.Now
			b := hot.New(cold, 1<<20, 0).WriteBehind(c.opts)
			defer b.Close()
			defer close(cold.open)
			waiting := make(chan struct{}, 1)
			hot.OnWait(b, func() { waiting <- struct{}{} })

			if c.first > 0 {
				cachetest.MustPut(t, b, entryOf("first", c.first)) // an empty queue: returns at once
				if got := <-cold.entered; got != "first" {
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
				if c.first > 0 {
					cold.release <- struct{}{} // the first store ends
				}
				if got := <-cold.entered; got != "second" {
					t.Fatalf("the writer stores %q, want second", got)
				}
				cold.release <- struct{}{}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if _, ok, _ := cold.Backend.Get(ctx, "second"); !ok {
					t.Fatal("a Put that waited returned before its entry was stored")
				}
			}
		})
	}
}

// After slow stores, a queue that the writer's recent pace would take
// more than half the window to store makes the next Put wait, even while
// every write queued is young.
func TestWriteBehindWaitsWhenTheWriterIsSlow(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cold := newGated()
	b := hot.New(cold, 1<<20, 0).WriteBehind(hot.WriteBehindOptions{Window: 200 * time.Millisecond, Now: clk.Now})
	defer b.Close()
	defer close(cold.open)
	waiting := make(chan struct{}, 1)
	hot.OnWait(b, func() { waiting <- struct{}{} })

	cachetest.MustPut(t, b, entryOf("slow", 10))
	<-cold.entered
	clk.Advance(80 * time.Millisecond) // the store takes 80ms
	cold.release <- struct{}{}
	b.Flush(ctx)

	cachetest.MustPut(t, b, entryOf("one", 10)) // one store at 80ms: within 100ms
	<-cold.entered                              // held: still queued
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, entryOf("two", 10)) }() // two: 160ms
	select {
	case <-done:
		t.Fatal("Put returned before its write behind a queue the writer needs 160ms for")
	case <-waiting:
	}
	cold.release <- struct{}{}
	<-cold.entered
	cold.release <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
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
	b := hot.New(failing{memory.New(0)}, 1<<20, 0).WriteBehind(hot.WriteBehindOptions{
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
	b := hot.New(cold, 1<<20, 0).WriteBehind(hot.WriteBehindOptions{Window: 0})
	defer b.Close()
	cachetest.MustPut(t, b, entryOf("k", 10))
	if _, ok, _ := cold.Get(ctx, "k"); !ok {
		t.Fatal("with a window of 0 Put returned before the entry was stored")
	}
}
