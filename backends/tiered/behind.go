package tiered

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

// MemoryCap is the most memory the tier holds by design: its own cap and,
// with write-behind on, the bodies queued for the persistent backend.
func (b *Backend) MemoryCap() int64 {
	if b.behind {
		return b.maxBytes + b.opts.MaxBytes
	}
	return b.maxBytes
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
	if hook != nil {
		hook()
	}
	if _, batches := b.cold.(cache.BatchPutter); !batches {
		// Entries are stored one by one: store this one now, beside the
		// writer, rather than behind everything queued.
		b.storeOwn(context.WithoutCancel(ctx), w)
	} else {
		b.signal() // no gathering: someone waits
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

// storeOwn stores w in the calling goroutine unless it started already
// (the writer's) or was dropped by a Delete. The writer stores the
// entries of its batches the same way when the backend has no batches,
// so that a Delete or a waiting Put of one key never waits for the
// stores of others.
//
// Only the latest write of a key is stored: one that a newer write
// replaced meanwhile (pending names the newer) leaves its outcome to
// that one, or, when the newer is done already, ends with it.
func (b *Backend) storeOwn(ctx context.Context, w *write) {
	l := b.lockKey(w.e.Key)
	l.Lock()
	defer l.Unlock()
	b.wmu.Lock()
	if w.started || w.dropped {
		b.wmu.Unlock()
		return
	}
	w.taken, w.started = true, true
	if latest := b.pending[w.e.Key]; latest != w {
		b.qCount--
		b.qBytes -= w.size
		if latest != nil {
			latest.superseded = append(latest.superseded, w)
			b.wmu.Unlock()
			return
		}
		b.wmu.Unlock()
		close(w.done)
		return
	}
	b.wmu.Unlock()
	b.finish([]*write{w}, []error{b.cold.Put(ctx, w.e)})
}

// admitLocked reports whether a Put may return before its write, the
// write being queued already: only while the queue is within its bounds
// and what it holds looks sure to be stored within half the window, at
// the pace of the writer's recent batches (before the first, nothing
// waits but the one write in flight). The other half is the margin for a
// batch slower than the recent ones.
func (b *Backend) admitLocked(now time.Time) bool {
	if b.qCount > b.opts.MaxEntries || b.qBytes > b.opts.MaxBytes {
		return false
	}
	if !b.paced && b.qCount > 1 {
		return false // no pace to judge the queue by yet: one at a time
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
		if !w.dropped && !w.taken {
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

// storeBatch stores up to writeBatch of the oldest queued writes: in one
// batch, under all their keys' locks, when the persistent backend is a
// cache.BatchPutter, else a few at once, each under its key's lock
// (storeOwn). Either way a Delete of a key waits for the store of it, and
// then wins.
func (b *Backend) storeBatch(ctx context.Context) {
	bp, batches := b.cold.(cache.BatchPutter)
	if !batches {
		b.storeEach(ctx)
		return
	}
	// Lock each distinct stripe once, in index order: no deadlock with a
	// Delete (one stripe).
	var held [len(b.keyLock)]bool
	b.wmu.Lock()
	n := 0
	for _, w := range b.order {
		if n == writeBatch {
			break
		}
		if !w.dropped && !w.taken {
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
	batch := b.takeLocked(func(w *write) bool { return held[b.stripe(w.e.Key)] })
	for _, w := range batch {
		w.started = true
	}
	b.wmu.Unlock()
	if len(batch) == 0 {
		return
	}
	start := b.wnow()
	errs := make([]error, len(batch))
	if len(batch) == 1 {
		errs[0] = b.cold.Put(ctx, batch[0].e)
	} else {
		entries := make([]*cache.Entry, len(batch))
		for i, w := range batch {
			entries[i] = w.e
		}
		if err := bp.PutMany(ctx, entries); err != nil {
			for i := range errs {
				errs[i] = err // some may be stored, none in part: drop all
			}
		}
	}
	b.measured(start, len(batch))
	b.finish(batch, errs)
}

// storeEach stores a batch on a backend without batches. The keys of a
// batch are distinct, so their stores may overlap: one at a time, each
// waits for the fsyncs of the one before (the file backend syncs every
// file it writes), a few at once are synced together.
func (b *Backend) storeEach(ctx context.Context) {
	b.wmu.Lock()
	batch := b.takeLocked(func(*write) bool { return true })
	b.wmu.Unlock()
	if len(batch) == 0 {
		return
	}
	start := b.wnow()
	sem := make(chan struct{}, storeConcurrency)
	var wg sync.WaitGroup
	for _, w := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.storeOwn(ctx, w)
			<-sem
		}()
	}
	wg.Wait()
	b.measured(start, len(batch))
}

// takeLocked takes the oldest queued writes that may be taken, in order,
// up to writeBatch: one queued meanwhile under a lock not held waits for
// the next batch, and so does everything after it. They are the batch in
// flight until measured.
func (b *Backend) takeLocked(may func(*write) bool) []*write {
	var batch []*write
	i := 0
	for ; i < len(b.order); i++ {
		w := b.order[i]
		if w.dropped || w.taken {
			continue
		}
		if len(batch) == writeBatch || !may(w) {
			break
		}
		w.taken = true
		batch = append(batch, w)
	}
	old := len(b.order)
	kept := slices.DeleteFunc(b.order[:copy(b.order, b.order[i:])], func(w *write) bool { return w.dropped || w.taken })
	clear(b.order[len(kept):old]) // let the stored bodies go
	b.order = kept
	b.flight = batch
	return batch
}

// measured ends the batch in flight, of n writes begun at start, and
// keeps the writer's pace per entry.
func (b *Backend) measured(start time.Time, n int) {
	took := b.wnow().Sub(start)
	b.wmu.Lock()
	defer b.wmu.Unlock()
	// A slower pace counts at once, a faster one only bit by bit: the
	// estimate errs on the side of waiting.
	if d := took / time.Duration(n); !b.paced || d > b.perEntry {
		b.perEntry = d
	} else {
		b.perEntry = (3*b.perEntry + d) / 4
	}
	b.paced = true
	b.flight = nil
}

// finish records the outcome of the stores of batch (errs[i] for
// batch[i]), drops the hot copies of failed ones and tells whoever waits.
func (b *Backend) finish(batch []*write, errs []error) {
	var failed, report []*write
	b.wmu.Lock()
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
		w.end()
	}
}

// end tells whoever waits for w, and for the writes it superseded, that
// it is done. The caller no longer holds wmu; nothing changes w after.
func (w *write) end() {
	for _, s := range w.superseded {
		s.err = w.err
		s.end()
	}
	close(w.done)
}

// storeConcurrency is how many stores of one batch run at once on a
// backend that stores entries one by one.
const storeConcurrency = 4

// dropPending removes the queued write of key, if any. The caller holds
// the key's lock, and every store runs under it, so none of key has
// started that has not ended. It reports whether there was one.
func (b *Backend) dropPending(key string) bool {
	if !b.behind {
		return false
	}
	b.wmu.Lock()
	w := b.pending[key]
	if w == nil || w.started {
		b.wmu.Unlock()
		return false
	}
	delete(b.pending, key)
	w.dropped = true
	b.qCount--
	b.qBytes -= w.size
	b.wmu.Unlock()
	w.end()
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
