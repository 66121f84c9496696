package hot

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// WriteBehindOptions bound what the tier may hold that the persistent
// backend does not have yet, and so what a crash of the process can lose.
type WriteBehindOptions struct {
	// Window is the durability window: a Put returns before its entry is
	// stored only while what is queued ahead of it looks sure to be stored
	// within half the window (the oldest write not yet done is younger
	// than that, and the writes queued, at the pace the writer kept
	// lately, take less than that); otherwise Put waits for its own write.
	// A slow disk then slows misses down instead of widening the window.
	// 0 or less turns write-behind off: every Put writes through.
	Window time.Duration
	// MaxEntries and MaxBytes bound the writes queued (entries, and the
	// bytes of their bodies; DefaultMaxEntries and DefaultMaxBytes when
	// 0). Past either, Put waits for its own write, so that a writer
	// behind never holds more than that in memory beyond the entries of
	// the Puts waiting, which a write-through would hold as well.
	MaxEntries int
	MaxBytes   int64
	// OnError is told of a failed store that no Put waited for; the hot
	// copy is dropped either way.
	OnError func(key string, err error)
	// Now is the clock the ages of queued writes are read on (time.Now
	// when nil); tests set it.
	Now func() time.Time
}

// The defaults of WriteBehindOptions.
const (
	DefaultWindow     = 200 * time.Millisecond
	DefaultMaxEntries = 1024
	DefaultMaxBytes   = 64 << 20
)

// writeDelay and writeBatch bound how the background writer gathers
// entries into one batch: the response that queued the first entry goes
// out before the write competes with it for the CPU, and one transaction
// costs less than many.
const (
	writeDelay = 2 * time.Millisecond
	writeBatch = 256
)

// WriteBehind makes Put return as soon as the entry is in the hot tier and
// leaves storing it in the persistent backend to a background writer, so a
// cache miss does not wait for a disk write, within the bounds of opts
// (see WriteBehindOptions): an entry a Put returned for more than
// opts.Window ago is stored unless the disk stalled. A failed store
// removes the hot copy. Operations that read or change many entries
// (List, Count, DeleteMatching, ...) first wait for pending stores. Call
// before any other method.
func (b *Backend) WriteBehind(opts WriteBehindOptions) *Backend {
	if opts.Window <= 0 {
		return b
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	b.wnow = opts.Now
	if b.wnow == nil {
		b.wnow = time.Now
	}
	b.opts = opts
	b.behind = true
	b.pending = map[string]*write{}
	b.wake = make(chan struct{}, 1)
	b.writer.Add(1)
	go b.writeLoop()
	return b
}

// Queued returns the writes queued for the persistent backend and the
// bytes of their bodies.
func (b *Backend) Queued() (entries int, bytes int64) {
	if !b.behind {
		return 0, 0
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.qCount, b.qBytes
}

func (b *Backend) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// putBehind puts e in the tier and queues its write; it waits for the
// write when the queue is past its bounds (admitLocked).
func (b *Backend) putBehind(ctx context.Context, e *cache.Entry) error {
	c := e.Clone()
	file := b.fileFor(c) // written before the lock: it may be large
	b.wmu.Lock()
	if b.closed {
		b.wmu.Unlock()
		b.closeFile(file)
		return errClosed(e.Key)
	}
	b.insert(c, b.now(), file)
	now := b.wnow()
	size := int64(len(c.Body))
	w := b.pending[c.Key]
	if w != nil && !w.taken {
		// Not stored yet: the newer entry takes its place in the queue.
		b.qBytes += size - w.size
		w.e, w.size = c, size
	} else {
		w = &write{e: c, size: size, queued: now, done: make(chan struct{})}
		b.pending[c.Key] = w
		b.order = append(b.order, w)
		b.qCount++
		b.qBytes += size
		b.signal()
	}
	if b.admitLocked(now) {
		b.wmu.Unlock()
		return nil
	}
	w.waiters++
	b.waiting++
	hook := b.testHookWait
	b.wmu.Unlock()
	b.signal() // no gathering: someone waits
	if hook != nil {
		hook()
	}
	var err error
	select {
	case <-w.done:
		err = w.err
	case <-ctx.Done():
		// The client is gone; the write goes on without it.
	}
	b.wmu.Lock()
	w.waiters--
	b.waiting--
	b.wmu.Unlock()
	return err
}

// admitLocked reports whether a Put may return before its write, the
// write being queued already: only while the queue is within its bounds
// and what it holds looks sure to be stored within half the window. The
// other half is the margin for a batch slower than the recent ones.
func (b *Backend) admitLocked(now time.Time) bool {
	if b.qCount > b.opts.MaxEntries || b.qBytes > b.opts.MaxBytes {
		return false
	}
	half := b.opts.Window / 2
	if t, ok := b.oldestLocked(); ok && now.Sub(t) >= half {
		return false
	}
	return time.Duration(b.qCount)*b.perEntry < half
}

// oldestLocked returns when the oldest write not yet done was queued.
func (b *Backend) oldestLocked() (time.Time, bool) {
	if len(b.flight) > 0 {
		return b.flight[0].queued, true
	}
	for _, w := range b.order {
		if !w.dropped {
			return w.queued, true
		}
	}
	return time.Time{}, false
}

// writeLoop is the background writer: it stores the queue in batches,
// oldest first, until Close.
func (b *Backend) writeLoop() {
	defer b.writer.Done()
	for {
		b.wmu.Lock()
		n, closed, hurry := len(b.order), b.closed, b.waiting > 0
		b.wmu.Unlock()
		if n == 0 {
			if closed {
				return
			}
			<-b.wake
			continue
		}
		if !closed && !hurry && n < writeBatch {
			b.gather()
		}
		b.storeBatch(context.Background())
	}
}

// gather waits up to writeDelay (less for a small window) for more
// writes to join the batch, and no longer once a batch is full, someone
// waits or the tier closes.
func (b *Backend) gather() {
	timer := time.NewTimer(min(writeDelay, b.opts.Window/8))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return
		case <-b.wake:
			b.wmu.Lock()
			enough := len(b.order) >= writeBatch || b.waiting > 0 || b.closed
			b.wmu.Unlock()
			if enough {
				return
			}
		}
	}
}

// storeBatch stores up to writeBatch of the oldest queued writes, in one
// batch when the persistent backend is a cache.BatchPutter. The keys'
// locks are held throughout, so a Delete of one of them waits for the
// store, and then wins.
func (b *Backend) storeBatch(ctx context.Context) {
	// Lock each distinct stripe once, in index order: no deadlock with a
	// Delete (one stripe).
	var held [len(b.keyLock)]bool
	b.wmu.Lock()
	n := 0
	for _, w := range b.order {
		if n == writeBatch {
			break
		}
		if !w.dropped {
			held[b.stripe(w.e.Key)] = true
			n++
		}
	}
	b.wmu.Unlock()
	for i := range held {
		if held[i] {
			b.keyLock[i].Lock()
		}
	}
	defer func() {
		for i := range held {
			if held[i] {
				b.keyLock[i].Unlock()
			}
		}
	}()

	b.wmu.Lock()
	// Take the oldest writes whose locks are held, in order: one queued
	// meanwhile under another lock waits for the next batch, and so does
	// everything after it.
	batch := make([]*write, 0, n)
	i := 0
	for ; i < len(b.order); i++ {
		w := b.order[i]
		if w.dropped {
			continue
		}
		if len(batch) == writeBatch || !held[b.stripe(w.e.Key)] {
			break
		}
		w.taken = true
		batch = append(batch, w)
	}
	old := len(b.order)
	kept := slices.DeleteFunc(b.order[:copy(b.order, b.order[i:])], func(w *write) bool { return w.dropped })
	clear(b.order[len(kept):old]) // let the stored bodies go
	b.order = kept
	b.flight = batch
	b.wmu.Unlock()
	if len(batch) == 0 {
		return
	}

	start := b.wnow()
	errs := b.putBatch(ctx, batch)
	took := b.wnow().Sub(start)

	var failed, report []*write
	b.wmu.Lock()
	if d := took / time.Duration(len(batch)); b.perEntry == 0 {
		b.perEntry = d
	} else {
		b.perEntry = (3*b.perEntry + d) / 4
	}
	for j, w := range batch {
		w.err = errs[j]
		b.qCount--
		b.qBytes -= w.size
		if b.pending[w.e.Key] == w {
			delete(b.pending, w.e.Key)
		}
		if w.err != nil {
			failed = append(failed, w)
			if w.waiters == 0 {
				report = append(report, w)
			}
		}
	}
	b.flight = nil
	b.wmu.Unlock()
	for _, w := range failed {
		b.removeEntry(w.e)
	}
	if b.opts.OnError != nil {
		for _, w := range report {
			b.opts.OnError(w.e.Key, w.err)
		}
	}
	// Last: whoever waits (a Put, Flush, Close) sees the outcome whole.
	for _, w := range batch {
		close(w.done)
	}
}

// putBatch stores the batch's entries and returns each one's error.
func (b *Backend) putBatch(ctx context.Context, batch []*write) []error {
	errs := make([]error, len(batch))
	if bp, ok := b.cold.(cache.BatchPutter); ok && len(batch) > 1 {
		entries := make([]*cache.Entry, len(batch))
		for i, w := range batch {
			entries[i] = w.e
		}
		if err := bp.PutMany(ctx, entries); err != nil {
			for i := range errs {
				errs[i] = err // some may be stored, none in part: drop all
			}
		}
		return errs
	}
	// The keys of a batch are distinct, so their stores may overlap: one
	// at a time, each waits for the fsyncs of the one before (the file
	// backend syncs every file it writes), a few at once are synced
	// together.
	sem := make(chan struct{}, storeConcurrency)
	var wg sync.WaitGroup
	for i, w := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = b.cold.Put(ctx, w.e)
			<-sem
		}()
	}
	wg.Wait()
	return errs
}

// storeConcurrency is how many stores of one batch run at once on a
// backend that stores entries one by one.
const storeConcurrency = 4

// dropPending removes the queued write of key, if the writer has not
// taken it; the caller holds the key's lock, so the writer is not storing
// it either. It reports whether there was one.
func (b *Backend) dropPending(key string) bool {
	if !b.behind {
		return false
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	w := b.pending[key]
	if w == nil || w.taken {
		return false
	}
	delete(b.pending, key)
	w.dropped = true
	b.qCount--
	b.qBytes -= w.size
	close(w.done)
	return true
}

// Flush waits until every write queued when it is called is done, or ctx
// ends.
func (b *Backend) Flush(ctx context.Context) {
	if !b.behind {
		return
	}
	b.wmu.Lock()
	ws := make([]*write, 0, len(b.pending))
	for _, w := range b.pending {
		ws = append(ws, w) // the latest of a key: done after any older one
	}
	b.waiting++
	b.wmu.Unlock()
	b.signal()
	defer func() {
		b.wmu.Lock()
		b.waiting--
		b.wmu.Unlock()
	}()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-ctx.Done():
			return
		}
	}
}

func (b *Backend) pendingEntry(key string) *cache.Entry {
	if !b.behind {
		return nil
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if w := b.pending[key]; w != nil {
		return w.e
	}
	return nil
}

// closeBehind stops taking writes and waits for the writer to store
// every one queued.
func (b *Backend) closeBehind() {
	b.closeOnce.Do(func() {
		b.wmu.Lock()
		b.closed = true
		b.wmu.Unlock()
		b.signal()
		b.writer.Wait()
	})
}

func (b *Backend) lockKey(key string) *sync.Mutex { return &b.keyLock[b.stripe(key)] }

// stripe picks the lock of a key (FNV-1a).
func (b *Backend) stripe(key string) int {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return int(h % uint32(len(b.keyLock)))
}
