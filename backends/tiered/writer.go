package tiered

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

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
	b.flushes.record(took, n)
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
