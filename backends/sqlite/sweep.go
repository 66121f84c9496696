package sqlite

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// DeleteMatching removes the matching entries and their bodies.
func (b *Backend) DeleteMatching(ctx context.Context, f cache.Filter) (int64, error) {
	if err := b.check("delete matching"); err != nil {
		return 0, err
	}
	where, args := whereClause(f)
	cond := "1"
	if len(where) > 0 {
		cond = strings.Join(where, " AND ")
	}
	return b.deleteWhere(ctx, "delete matching", cond, args...)
}

// DeleteExpired removes the entries stale at now.
func (b *Backend) DeleteExpired(ctx context.Context, now time.Time) (int64, error) {
	if err := b.check("delete expired"); err != nil {
		return 0, err
	}
	n, err := b.deleteWhere(ctx, "delete expired", "e.expires <= ?", now.UnixNano())
	b.purged.Add(n) // what was marked deleted, even when a later batch failed
	return n, err
}

// Evictions returns how many entries were evicted to stay under the cap.
func (b *Backend) Evictions() int64 { return b.evictions.Load() }

// Purged returns how many expired entries DeleteExpired removed.
func (b *Backend) Purged() int64 { return b.purged.Load() }

// markBatchRows is how many entries one transaction of a bulk delete
// marks deleted: some 25 ms of the writer at a million entries, after
// which stores and hit counts waiting for it get their turn.
const markBatchRows = 1000

// deleteWhere deletes the entries matching cond (over entries AS e) and
// returns how many it deleted. It lists their ids first, then marks them
// in rowid order, markBatchRows per transaction, checking cond again:
// neighbouring rows share table pages, so a batch rewrites a few hundred
// pages rather than one per row, and an entry stored again meanwhile is
// left alone. Cancelling ctx stops it between batches.
func (b *Backend) deleteWhere(ctx context.Context, op, cond string, args ...any) (int64, error) {
	var ids []int64
	if err := b.reader.SelectContext(ctx, &ids, selectIDs(cond), args...); err != nil {
		return 0, b.fail(op, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	slices.Sort(ids)
	defer b.wakeSweeper()
	mark := markIDs(cond)
	var total int64
	for batch := range slices.Chunk(ids, markBatchRows) {
		list, _ := json.Marshal(batch) // a []int64 always encodes
		start := time.Now()
		res, err := b.writer.ExecContext(ctx, mark, append([]any{string(list)}, args...)...)
		if err != nil {
			return total, b.fail(op, err)
		}
		b.batchDone(op, time.Since(start))
		b.wakeCheckpointer()
		n, err := res.RowsAffected()
		if err != nil {
			return total, b.fail(op, err)
		}
		total += n
	}
	return total, nil
}

// selectIDs lists the ids of the rows matching cond (over entries AS e).
// Rows marked deleted already may be among them: leaving the check to
// markIDs lets an index on cond's columns answer alone, without reading
// the table.
func selectIDs(cond string) string {
	return `SELECT e.id FROM entries AS e WHERE ` + cond
}

// markIDs marks deleted the live rows matching cond among the ids given as
// a JSON array in its first parameter.
func markIDs(cond string) string {
	return `UPDATE entries AS e SET deleted = 1
	WHERE e.id IN (SELECT value FROM json_each(?)) AND e.deleted = 0 AND ` + cond
}

// batchDone reports a bulk delete's or the sweeper's transaction to
// onBatch.
func (b *Backend) batchDone(op string, held time.Duration) {
	if f := b.onBatch.Load(); f != nil {
		(*f)(op, held)
	}
}

// sweepBatchRows is how many deleted rows one transaction of the sweeper
// removes: each costs a seek and a rewritten page in every index, so 100
// of them hold the writer for some 30 ms at a million entries, and the
// pages they change fit the page cache.
const sweepBatchRows = 100

// wakeSweeper has the sweeper look for deleted rows, without waiting.
func (b *Backend) wakeSweeper() {
	select {
	case b.sweepWake <- struct{}{}:
	default:
	}
}

// sweepLoop removes deleted rows whenever woken, until ctx is done.
// After each batch it checkpoints, so that the next batch starts the log
// over instead of growing it, and leaves the writer free for at least as
// long as the batch held it: a sweep takes at most half of the writer's
// time. A failed batch is retried after a second, and its error reported
// by Ping meanwhile.
//
// Until the sweep is done, reads step over the deleted rows. Where they
// gather, that shows: after a purge of 100,000 entries of a million, for
// the minute and a half the sweep takes, the first page by ascending
// expiry takes 0.6 s instead of 1 ms, and counting the expired entries
// (none) as long as counting the 100,000 did before the purge, 0.5 s.
func (b *Backend) sweepLoop(ctx context.Context) {
	defer b.background.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.sweepWake:
		}
		for {
			start := time.Now()
			n, err := b.sweepBatch(ctx)
			held := time.Since(start)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				b.sweepErr.Store(&err)
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
			b.sweepErr.Store(nil)
			b.batchDone("sweep", held)
			if n < sweepBatchRows {
				break
			}
			start = time.Now()
			b.checkpoint(ctx)
			if !sleep(ctx, held-time.Since(start)) {
				return
			}
		}
	}
}

// sleep waits for d, or less if ctx is done first, and reports whether
// ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// sweepRows removes deleted rows (and, by the cascade, their bodies), in
// rowid order, as many as its parameter says.
const sweepRows = `DELETE FROM entries WHERE id IN (
	SELECT id FROM entries WHERE deleted = 1 ORDER BY id LIMIT ?)`

// sweepBatch removes up to sweepBatchRows deleted rows, in rowid order,
// and their bodies. The totals counted them out when they were marked.
func (b *Backend) sweepBatch(ctx context.Context) (int64, error) {
	res, err := b.writer.ExecContext(ctx, sweepRows, sweepBatchRows)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// checkpoint copies the write-ahead log into the database file. A passive
// checkpoint waits for no one: readers and the writer go on meanwhile.
// Its errors are not reported: one that fails leaves the frames to the
// next, and the writer's own autocheckpoint bounds the log if they keep
// failing.
func (b *Backend) checkpoint(ctx context.Context) {
	b.checkpointer.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
}

// checkpointPause is the least time between two background checkpoints,
// so that a burst of writes is copied in one go.
const checkpointPause = 50 * time.Millisecond

// wakeCheckpointer has the log checkpointed soon, without waiting.
func (b *Backend) wakeCheckpointer() {
	select {
	case b.checkpointWake <- struct{}{}:
	default:
	}
}

// checkpointLoop checkpoints whenever woken, until ctx is done.
func (b *Backend) checkpointLoop(ctx context.Context) {
	defer b.background.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.checkpointWake:
		}
		b.checkpoint(ctx)
		if !sleep(ctx, checkpointPause) {
			return
		}
	}
}
