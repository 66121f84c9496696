// Package tiered puts a bounded in-memory tier of recently used entries in
// front of a persistent cache.Backend, so cache hits are answered without
// touching the disk or the network and without copying bodies.
//
// Every write through the tier keeps it consistent. Writes made around it
// (another process on the same SQLite file or directory, an import by the
// command line while the server runs) become visible once a hot copy is
// older than the TTL, when it is read again from the persistent backend.
package tiered

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/backends/internal/lru"
	"github.com/cachegate/cachegate/cache"
)

// Backend is a cache.Backend with a hot tier. It is safe for concurrent use.
type Backend struct {
	cold     cache.Backend
	maxBytes int64
	ttl      time.Duration
	now      func() time.Time

	// mu protects items and the items' e and file. A hit only reads
	// (RLock): with an exclusive lock, concurrent hits queued on it (two
	// thirds of the lock waits of a fast-lane hit, measured).
	mu sync.RWMutex
	// fileDir, when set, is where bodies of fileMin bytes and more are
	// also kept in unnamed files (see FileBodies).
	fileDir string
	fileMin int
	files   atomic.Int64 // body files open
	// items cost their entries' footprints, bounded by maxBytes.
	items *lru.Cache[string, *item]

	// Write-behind (see WriteBehind): Put returns once the entry is hot and
	// a background writer stores it in the persistent backend, unless the
	// queue is past its bounds.
	behind    bool
	opts      WriteBehindOptions
	wnow      func() time.Time
	keyLock   [64]sync.Mutex // orders a key's store against its delete
	wake      chan struct{}  // tells the writer there is work (buffered: wakes coalesce)
	writer    sync.WaitGroup
	closeOnce sync.Once
	// wmu protects the fields below it. It is taken before mu, never
	// after.
	wmu     sync.Mutex
	closed  bool
	pending map[string]*write // the latest write of each key not yet done
	order   []*write          // writes not yet taken, oldest first (and some dropped or taken since)
	flight  []*write          // the writer's batch being stored, oldest first
	qCount  int               // writes not yet done (queued, waited for or in flight)
	qBytes  int64             // their body bytes
	// perEntry is how long the writer took per entry lately: a slower
	// batch counts at once, a faster one bit by bit. It tells how long
	// what is queued will take.
	perEntry time.Duration
	paced    bool       // perEntry was measured
	waiting  int        // Puts and Flushes waiting for a write: no gathering
	flushes  flushStats // the writer's batches, for metrics
	// testHookWait, if set, is called when a Put starts waiting for its
	// write.
	testHookWait func()
}

// write is one entry waiting to be stored by the writer.
type write struct {
	e      *cache.Entry
	size   int64
	queued time.Time     // when the key was first queued
	done   chan struct{} // closed once stored, failed or dropped by a Delete
	err    error         // why the store failed, set before done closes
	// waiters counts the Puts waiting on done: a failure is theirs to
	// report then, not OnError's.
	waiters int
	taken   bool // in a batch of the writer's, or stored by its Put: a new Put of the key queues anew
	started bool // its store began (under its key's lock)
	dropped bool // a Delete came first
	// superseded are older writes of the key whose store would have begun
	// while this one was pending: they are not stored, and this one's
	// outcome is theirs.
	superseded []*write
}

type item struct {
	e      *cache.Entry // shared and never modified once in the tier
	loaded time.Time
	// file holds the body too when it is large (FileBodies); closed when
	// the item leaves the tier, unless handed on to its successor.
	file *os.File
	// moved is when the item last went to the front of the LRU list
	// (UnixNano): a hit moves it at most once per touchEvery, so that
	// hits seldom need the write lock.
	moved atomic.Int64
}

// touchEvery is how often a hit moves its item to the front of the LRU
// list at most. The order of eviction is then exact to within it: an entry
// hit all the time is not evicted unless the tier turns over within it.
const touchEvery = time.Second

var (
	_ cache.Backend        = (*Backend)(nil)
	_ cache.Peeker         = (*Backend)(nil)
	_ cache.BodyFilePeeker = (*Backend)(nil)
)

// New returns a tier of at most maxBytes of bodies in front of cold. A hot
// copy older than ttl is read again from cold before use; ttl <= 0 means
// hot copies never go stale (right only when nothing writes around the
// tier). Hand the tier out as Served returns it, which also offers the
// cold backend's size cap, vacuum and health check when it has them.
func New(cold cache.Backend, maxBytes int64, ttl time.Duration) *Backend {
	b := &Backend{cold: cold, maxBytes: maxBytes, ttl: ttl, now: time.Now, wnow: time.Now}
	b.items = lru.New(maxBytes, b.dropped)
	return b
}

// FileBodies makes the tier keep each body of min bytes or more in an
// unnamed file in dir as well (O_TMPFILE: nothing is left behind, whatever
// happens to the process), so that PeekMemoryFile can offer it to be sent
// with sendfile: a 100 KiB hit then costs about 7% less CPU (measured)
// than one whose body is copied into the socket. The files live in the
// page cache, up to the tier's size in all. Where dir's file system has
// no unnamed files, bodies stay in memory only. Call before any other
// method.
func (b *Backend) FileBodies(dir string, min int) *Backend {
	b.fileDir, b.fileMin = dir, min
	return b
}

// Peek returns the entry shared with the tier: read-only for the caller.
//
// A copy held for longer than the TTL is checked against the persistent
// backend's stamp when it gives them (cache.Stamper) and, if it is the
// version stored, trusted for another TTL without reading the entry
// again: at a million SQLite entries, reading each of a thousand hot
// entries every TTL cost 8% of the CPU of serving their hits.
func (b *Backend) Peek(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if e, ok := b.PeekMemory(key); ok {
		return e, true, nil
	}
	now := b.now()
	if e, ok := b.renew(ctx, key, now); ok {
		return e, true, nil
	}
	e, ok, err := b.cold.Get(ctx, key)
	if err != nil || !ok {
		if err == nil {
			b.remove(key)
		}
		return nil, ok, err
	}
	b.add(e, now)
	return e, true, nil
}

// renew trusts the tier's copy of key for another TTL from now if the
// persistent backend says by its stamp that the copy is the version it
// holds. ok is false when it does not (no copy, no stamps, another
// version, nothing stored, an error): the caller then reads the entry.
func (b *Backend) renew(ctx context.Context, key string, now time.Time) (e *cache.Entry, ok bool) {
	st, stamps := b.cold.(cache.Stamper)
	if !stamps {
		return nil, false
	}
	b.mu.RLock()
	if it, held := b.items.Peek(key); held {
		e = it.e
	}
	b.mu.RUnlock()
	if e == nil {
		return nil, false
	}
	s, found, err := st.Stamp(ctx, key)
	if err != nil || !found || !s.Same(cache.StampOf(e)) {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	it, held := b.items.Peek(key)
	if !held || it.e != e {
		return nil, false // replaced or dropped meanwhile
	}
	it.loaded = now
	return e, true
}

// PeekMemory returns the entry if the tier holds it and it is younger than
// the tier's TTL, or if it waits to be written behind; it never reads the
// cold backend.
func (b *Backend) PeekMemory(key string) (*cache.Entry, bool) {
	e, _, ok := b.PeekMemoryFile(key)
	return e, ok
}

// PeekMemoryFile is PeekMemory that also returns the file holding the
// body, if the tier keeps one (FileBodies).
func (b *Backend) PeekMemoryFile(key string) (*cache.Entry, cache.BodyFile, bool) {
	now := b.now()
	b.mu.RLock()
	var e *cache.Entry
	var f *os.File
	move := false
	if it, ok := b.items.Peek(key); ok {
		if b.ttl <= 0 || now.Sub(it.loaded) < b.ttl {
			e, f = it.e, it.file
			move = now.UnixNano()-it.moved.Load() >= int64(touchEvery)
		}
	}
	b.mu.RUnlock()
	if e != nil {
		if move {
			b.moveToFront(key, now)
		}
		if f == nil {
			return e, nil, true // not a typed nil: callers test the interface
		}
		return e, f, true
	}
	if e := b.pendingEntry(key); e != nil {
		return e, nil, true
	}
	return nil, nil, false
}

// Get returns a copy of the entry, which the caller owns.
func (b *Backend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	e, ok, err := b.Peek(ctx, key)
	if !ok || err != nil {
		return nil, ok, err
	}
	return e.Clone(), true, nil
}

// Put writes through to the persistent backend, then keeps a private copy;
// with WriteBehind it keeps the copy and queues the write, or waits for it
// when the queue is past its bounds.
func (b *Backend) Put(ctx context.Context, e *cache.Entry) error {
	if b.behind {
		return b.putBehind(ctx, e)
	}
	if err := b.cold.Put(ctx, e); err != nil {
		b.remove(e.Key)
		return err
	}
	b.add(e.Clone(), b.now())
	return nil
}

func errClosed(key string) error { return fmt.Errorf("hot: put %q: %w", key, cache.ErrClosed) }

// moveToFront marks the item of key as just used, if it is still there.
func (b *Backend) moveToFront(key string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if it, ok := b.items.Get(key); ok {
		it.moved.Store(now.UnixNano())
	}
}

func (b *Backend) add(e *cache.Entry, loaded time.Time) {
	b.insert(e, loaded, b.fileFor(e))
}

// fileFor returns the file to keep e's body in, or nil. The same body
// read again (every TTL) keeps its file; a new one is written here, so
// callers call it before taking their locks.
func (b *Backend) fileFor(e *cache.Entry) *os.File {
	if b.fileDir == "" || len(e.Body) < b.fileMin || int64(len(e.Body)) > b.maxBytes/4 {
		return nil
	}
	if f := b.takeFile(e); f != nil {
		return f
	}
	if b.files.Load() >= maxBodyFiles {
		return nil
	}
	f := bodyFile(b.fileDir, e.Body)
	if f != nil {
		b.files.Add(1)
	}
	return f
}

// maxBodyFiles bounds the descriptors the tier's files take, so that they
// never starve the sockets of a process with a low limit on open files.
const maxBodyFiles = 1024

// closeFile closes a body file of the tier's (nil does nothing). A
// sendfile under way holds the descriptor: the file closes when it is
// done (os.File's reference count).
func (b *Backend) closeFile(f *os.File) {
	if f != nil {
		f.Close()
		b.files.Add(-1)
	}
}

// insert puts e in the tier with its body's file (or nil), which the tier
// then owns.
func (b *Backend) insert(e *cache.Entry, loaded time.Time, file *os.File) {
	size := e.Footprint()
	if size > b.maxBytes/4 {
		// One entry may not push out most of the tier.
		b.remove(e.Key)
		b.closeFile(file)
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	it := &item{e: e, loaded: loaded, file: file}
	it.moved.Store(loaded.UnixNano())
	b.items.Add(e.Key, it, size)
}

// dropped closes the body file of an item that left the tier. b.mu is
// held.
func (b *Backend) dropped(_ string, it *item) {
	b.closeFile(it.file)
	it.file = nil
}

// takeFile takes the file of the tier's copy of e's key when it holds the
// same body, so that reading an entry again does not write it again. The
// bodies are compared outside the write lock: they may be large.
func (b *Backend) takeFile(e *cache.Entry) *os.File {
	b.mu.RLock()
	it, ok := b.items.Peek(e.Key)
	var f *os.File
	var body []byte
	if ok {
		f, body = it.file, it.e.Body
	}
	b.mu.RUnlock()
	if f == nil || !bytes.Equal(body, e.Body) {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.items.Peek(e.Key); !ok || cur != it || it.file != f {
		return nil // replaced meanwhile
	}
	it.file = nil // the old copy answers from memory until replaced
	return f
}

func (b *Backend) remove(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.items.Remove(key)
}

// removeEntry drops the hot copy of e's key if it is e (or e with hits
// recorded since: the same response).
func (b *Backend) removeEntry(e *cache.Entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if it, ok := b.items.Peek(e.Key); ok && (it.e == e || it.e.Created.Equal(e.Created)) {
		b.items.Remove(e.Key)
	}
}

// removeMatching drops hot copies the filter matches (all when match is
// nil).
func (b *Backend) removeMatching(match func(*cache.Entry) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.items.RemoveFunc(func(_ string, it *item) bool { return match == nil || match(it.e) })
}

// Delete removes the entry from both tiers, and a pending store of it.
func (b *Backend) Delete(ctx context.Context, key string) (bool, error) {
	l := b.lockKey(key)
	l.Lock()
	defer l.Unlock()
	wasPending := b.dropPending(key)
	b.remove(key)
	ok, err := b.cold.Delete(ctx, key)
	return ok || wasPending, err
}

// RecordHits goes to the persistent backend and to the hot copies. A hot
// entry is shared and read-only, so it is replaced by a shallow copy with
// the new counts (headers and body stay shared).
func (b *Backend) RecordHits(ctx context.Context, hits []cache.Hit) error {
	b.Flush(ctx)
	if err := b.cold.RecordHits(ctx, hits); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range hits {
		if it, ok := b.items.Peek(h.Key); ok {
			e := *it.e
			e.Hits += h.Count
			if h.Last.After(e.LastHit) {
				e.LastHit = h.Last
			}
			it.e = &e
		}
	}
	return nil
}

// List reads the persistent backend.
func (b *Backend) List(ctx context.Context, q cache.Query) (cache.Page, error) {
	b.Flush(ctx)
	return b.cold.List(ctx, q)
}

// Count reads the persistent backend.
func (b *Backend) Count(ctx context.Context, f cache.Filter) (cache.Totals, error) {
	b.Flush(ctx)
	return b.cold.Count(ctx, f)
}

// DeleteMatching removes matching entries from both tiers.
func (b *Backend) DeleteMatching(ctx context.Context, f cache.Filter) (int64, error) {
	b.Flush(ctx)
	b.removeMatching(f.Match)
	n, err := b.cold.DeleteMatching(ctx, f)
	b.removeMatching(f.Match) // and whatever a concurrent Peek brought back meanwhile
	return n, err
}

// DeleteExpired removes stale entries from both tiers.
func (b *Backend) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	b.Flush(ctx)
	expired := func(e *cache.Entry) bool { return e.IsExpired(now) }
	b.removeMatching(expired)
	return b.cold.DeleteExpired(ctx, now)
}

// Clear empties both tiers.
func (b *Backend) Clear(ctx context.Context) error {
	b.Flush(ctx)
	b.removeMatching(nil)
	err := b.cold.Clear(ctx)
	b.removeMatching(nil)
	return err
}

// Close stores what is pending, closes the persistent backend and drops
// the tier.
func (b *Backend) Close() error {
	if b.behind {
		b.closeBehind()
	}
	b.removeMatching(nil)
	return b.cold.Close()
}

// HotBytes returns the bytes the tier holds: its entries' footprints.
func (b *Backend) HotBytes() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.items.Cost()
}
