// Package memory is an in-process cache.Backend: a map plus a
// least-recently-used list, bounded by the total size of the stored bodies.
//
// It is the fastest backend and the one tests use as a fake; nothing
// survives a restart.
package memory

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/backends/internal/lru"
	"github.com/cachegate/cachegate/cache"
)

var (
	_ cache.Backend = (*Backend)(nil)
	_ cache.Sizer   = (*Backend)(nil)
	_ cache.Pinger  = (*Backend)(nil)

	_ cache.EvictionCounter = (*Backend)(nil)
	_ cache.PurgeCounter    = (*Backend)(nil)
	_ cache.Peeker          = (*Backend)(nil)
)

// Backend stores entries in memory. It is safe for concurrent use.
//
// Stored entries are immutable once in the map: Put stores a private deep
// copy, and RecordHits swaps in a shallow copy with new counters. That lets
// Get copy an entry out after releasing the lock, keeping the critical
// section of the hot path to a map lookup and a list splice.
type Backend struct {
	maxBytes int64 // 0: unbounded; fixed at New

	mu sync.Mutex // protects everything below
	// entries are by key, costing their Size, most recently used first.
	// An entry is never mutated while stored.
	entries *lru.Cache[string, *cache.Entry]
	closed  bool
	purged  atomic.Int64 // expired entries DeleteExpired removed
}

// New returns an empty backend that holds at most maxBytes of bodies,
// evicting least recently used entries first; 0 means unbounded. Put,
// Get and RecordHits count as uses.
func New(maxBytes int64) *Backend {
	return &Backend{maxBytes: maxBytes, entries: lru.New[string, *cache.Entry](maxBytes, nil)}
}

// MaxBytes returns the configured cap on body bytes, 0 if none.
func (b *Backend) MaxBytes() int64 { return b.maxBytes }

// Ping reports whether the backend is open.
func (b *Backend) Ping(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.check("ping")
}

// check returns ErrClosed, wrapped, once Close has been called. b.mu must
// be held.
func (b *Backend) check(op string) error {
	if b.closed {
		return fmt.Errorf("memory: %s: %w", op, cache.ErrClosed)
	}
	return nil
}

// Get returns a copy of the entry under key and marks it recently used.
func (b *Backend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	e, ok, err := b.Peek(ctx, key)
	if !ok || err != nil {
		return nil, ok, err
	}
	return copyEntry(e, true), true, nil
}

// Peek returns the stored entry itself, without copying it, and marks it
// recently used. Stored entries are never changed in place (Put and
// RecordHits replace them), so sharing one read-only is safe: the gateway
// answers cache hits this way.
func (b *Backend) Peek(ctx context.Context, key string) (*cache.Entry, bool, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, false, fmt.Errorf("memory: get %q: %w", key, cache.ErrClosed)
	}
	e, ok := b.entries.Get(key)
	b.mu.Unlock()
	return e, ok, nil
}

// PeekMemory is Peek without the error: everything here is in memory. A
// closed backend holds nothing.
func (b *Backend) PeekMemory(key string) (*cache.Entry, bool) {
	e, ok, err := b.Peek(context.Background(), key)
	return e, ok && err == nil
}

// copyEntry returns a copy of e that shares nothing mutable with it,
// leaving the body and request body out unless withBody. It is
// cache.Entry.Clone without cloning bodies only to drop them.
func copyEntry(e *cache.Entry, withBody bool) *cache.Entry {
	c := *e
	c.RequestHeader = cloneHeader(e.RequestHeader)
	c.Header = cloneHeader(e.Header)
	c.Body, c.RequestBody = nil, nil
	if withBody {
		c.Body = append(make([]byte, 0, len(e.Body)), e.Body...)
		if e.RequestBody != nil {
			c.RequestBody = append([]byte(nil), e.RequestBody...)
		}
	}
	return &c
}

// cloneHeader is http.Header.Clone, except that it keeps nil as nil.
func cloneHeader(h http.Header) http.Header {
	if h == nil {
		return nil
	}
	return h.Clone()
}

// Put stores a copy of e, evicting least recently used entries to stay
// under the cap. An entry larger than the whole cap is not stored (and
// any older entry under its key is removed, since it is being replaced).
func (b *Backend) Put(ctx context.Context, e *cache.Entry) error {
	c := copyEntry(e, true)
	c.Size = int64(len(c.Body)) // the cap is on real bytes, whatever Size says
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(fmt.Sprintf("put %q", e.Key)); err != nil {
		return err
	}
	b.entries.Add(c.Key, c, c.Size)
	return nil
}

// Delete removes the entry under key and reports whether it was there.
func (b *Backend) Delete(ctx context.Context, key string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(fmt.Sprintf("delete %q", key)); err != nil {
		return false, err
	}
	return b.entries.Remove(key), nil
}

// RecordHits adds the hits to the entries still stored and marks them
// recently used. LastHit only moves forward.
func (b *Backend) RecordHits(ctx context.Context, hits []cache.Hit) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("record hits"); err != nil {
		return err
	}
	for _, h := range hits {
		e, ok := b.entries.Get(h.Key)
		if !ok {
			continue
		}
		c := *e // copy on write: a Get may be copying e right now
		c.Hits += h.Count
		if h.Last.After(c.LastHit) {
			c.LastHit = h.Last
		}
		b.entries.Add(c.Key, &c, c.Size) // the same cost: evicts nothing
	}
	return nil
}

// matching returns the stored entries passing f, in no order. b.mu must be
// held.
func (b *Backend) matching(f cache.Filter) []*cache.Entry {
	f.Now = f.At() // judge freshness at one instant for the whole scan
	var out []*cache.Entry
	if len(f.Keys) > 0 {
		for _, k := range f.Keys {
			if e, ok := b.entries.Peek(k); ok && f.Match(e) && !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
		return out
	}
	for _, e := range b.entries.All() {
		if f.Match(e) {
			out = append(out, e)
		}
	}
	return out
}

// List returns a page of matching entries. It filters and sorts on every
// call: O(n log n), fine for the sizes an in-memory cache holds.
func (b *Backend) List(ctx context.Context, q cache.Query) (cache.Page, error) {
	s, err := q.Sort.Normalize()
	if err != nil {
		return cache.Page{}, fmt.Errorf("memory: list: %w", err)
	}
	var cur *cache.Cursor
	if q.Cursor != "" {
		c, err := cache.ParseCursor(q.Cursor, s)
		if err != nil {
			return cache.Page{}, fmt.Errorf("memory: list: %w", err)
		}
		cur = &c
	}
	b.mu.Lock()
	if err := b.check("list"); err != nil {
		b.mu.Unlock()
		return cache.Page{}, err
	}
	found := b.matching(q.Filter)
	b.mu.Unlock()

	if cur != nil {
		found = slices.DeleteFunc(found, func(e *cache.Entry) bool { return !cur.After(e) })
	}
	slices.SortFunc(found, func(x, y *cache.Entry) int {
		if s.Less(x, y) {
			return -1
		}
		return 1 // keys are unique, so no two entries tie
	})
	var page cache.Page
	limit := q.PageLimit()
	if len(found) > limit {
		found = found[:limit]
		page.Next = cache.CursorAfter(found[limit-1], s)
	}
	page.Entries = make([]*cache.Entry, len(found))
	for i, e := range found {
		page.Entries[i] = copyEntry(e, q.WithBody)
	}
	return page, nil
}

// Count returns the number and total body size of the matching entries.
func (b *Backend) Count(ctx context.Context, f cache.Filter) (cache.Totals, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("count"); err != nil {
		return cache.Totals{}, err
	}
	if f.SelectsAll() {
		return cache.Totals{Entries: int64(b.entries.Len()), Bytes: b.entries.Cost()}, nil
	}
	var t cache.Totals
	for _, e := range b.matching(f) {
		t.Entries++
		t.Bytes += e.Size
	}
	return t, nil
}

// DeleteMatching removes the matching entries and returns how many.
func (b *Backend) DeleteMatching(ctx context.Context, f cache.Filter) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("delete matching"); err != nil {
		return 0, err
	}
	found := b.matching(f)
	for _, e := range found {
		b.entries.Remove(e.Key)
	}
	return int64(len(found)), nil
}

// DeleteExpired removes the entries stale at now and returns how many.
func (b *Backend) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("delete expired"); err != nil {
		return 0, err
	}
	n := b.entries.RemoveFunc(func(_ string, e *cache.Entry) bool { return e.IsExpired(now) })
	b.purged.Add(int64(n))
	return int64(n), nil
}

// Evictions returns how many entries were evicted to stay under the cap.
func (b *Backend) Evictions() int64 { return b.entries.Evictions() }

// Purged returns how many expired entries DeleteExpired removed.
func (b *Backend) Purged() int64 { return b.purged.Load() }

// Clear removes every entry.
func (b *Backend) Clear(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("clear"); err != nil {
		return err
	}
	b.reset()
	return nil
}

// reset empties the store. b.mu must be held.
func (b *Backend) reset() {
	b.entries.Clear()
}

// Close drops every entry; later calls return cache.ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check("close"); err != nil {
		return err
	}
	b.closed = true
	b.reset()
	return nil
}
