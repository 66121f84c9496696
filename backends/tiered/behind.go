package tiered

import (
	"context"
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
	ws := make([]*write, 0, len(b.pending)+len(b.flight))
	for _, w := range b.pending {
		ws = append(ws, w) // the latest of a key: done after any older one
	}
	// And the writer's batch: finish takes a write out of pending before
	// it reports a failure to OnError, which Flush must wait for too.
	ws = append(ws, b.flight...)
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
