package sqlite

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/cachegate/cachegate/cache"
)

// Put stores e in one transaction, then evicts least recently used entries
// in the same transaction if the cap is exceeded.
func (b *Backend) Put(ctx context.Context, e *cache.Entry) error {
	op := fmt.Sprintf("put %q", e.Key)
	if err := b.check(op); err != nil {
		return err
	}
	r, err := toRow(e)
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return b.fail(op, err)
	}
	defer tx.Rollback()
	if b.maxBytes > 0 && r.Size > b.maxBytes {
		// Too large to keep at all; the entry it replaces is outdated.
		if err := b.markKey(ctx, tx, e.Key); err != nil {
			return b.fail(op, err)
		}
		return b.commit(tx, op)
	}
	var id int64
	if err := tx.QueryRowxContext(ctx, upsertEntry, r.args()...).Scan(&id); err != nil {
		return b.fail(op, err)
	}
	if _, err := tx.ExecContext(ctx, upsertBody, id, nonNil(e.Body), requestBody(e.RequestBody)); err != nil {
		return b.fail(op, err)
	}
	var evicted int64
	if b.maxBytes > 0 {
		if evicted, err = b.evict(ctx, tx, id); err != nil {
			return b.fail(op, err)
		}
	}
	if err := b.commit(tx, op); err != nil {
		return err
	}
	b.evictions.Add(evicted)
	return nil
}

// PutMany stores entries as Put would, in one transaction and a hundred
// rows per statement, for imports that arrive in batches: it saves Put's
// transaction, commit and statements per entry. A later entry replaces an earlier one
// with the same key, as in a sequence of Puts. With a size cap, an entry
// larger than the cap is dropped (and the entry it would replace deleted),
// and least recently used entries are evicted once, after the batch, so
// which entries of a batch larger than the cap survive may differ from
// what Puts one by one would leave. On error nothing of the batch is kept.
func (b *Backend) PutMany(ctx context.Context, entries []*cache.Entry) error {
	op := fmt.Sprintf("put many (%d entries)", len(entries))
	if err := b.check(op); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return b.fail(op, err)
	}
	defer tx.Rollback()
	_, evicted, err := b.putEach(ctx, tx, op, slices.Values(entries))
	if err != nil {
		return err
	}
	if err := b.commit(tx, op); err != nil {
		return err
	}
	b.evictions.Add(evicted)
	return nil
}

// loadCacheSize is the page cache of the writer connection during Load, in
// SQLite's negative-means-KiB form: large enough to hold the key index of
// a few million entries, so that random inserts into it do not spill.
const loadCacheSize = -512 << 10 // 512 MiB, given back when Load returns

// Load stores every entry of the sequence, as PutMany does, for filling a
// large cache at once (benchmarks, restoring an export) when PutMany is
// too slow: inserting into each of the table's secondary indexes at random
// places costs more than the rows themselves, so Load drops those indexes,
// inserts, and builds them again in one sorted pass each. It all happens
// in one transaction: readers keep seeing the cache as it was, with its
// indexes, until Load commits, but every other write (Put, hit counts)
// waits until then. The writer connection may use up to 512 MiB of page
// cache meanwhile. Entries in key order load about twice as fast as in
// random order, since inserts into the key index then append. Load returns
// the number of entries written (a size cap may evict some of them again
// at the end); on error, nothing of the sequence is kept.
func (b *Backend) Load(ctx context.Context, entries iter.Seq[*cache.Entry]) (int, error) {
	const op = "load"
	if err := b.check(op); err != nil {
		return 0, err
	}
	// The pool has one connection, so the pragma applies to the
	// transaction below; it is reset whatever happens.
	conn, err := b.writer.Connx(ctx)
	if err != nil {
		return 0, b.fail(op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = %d`, loadCacheSize)); err != nil {
		return 0, b.fail(op, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA cache_size = `+writerCacheSize)

	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return 0, b.fail(op, err)
	}
	defer tx.Rollback()
	// The indexes the migrations created, not the one behind UNIQUE (key),
	// which the upsert needs and whose sql is NULL.
	var indexes []struct {
		Name string `db:"name"`
		SQL  string `db:"sql"`
	}
	if err := tx.SelectContext(ctx, &indexes, `SELECT name, sql FROM sqlite_schema
		WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL ORDER BY name`); err != nil {
		return 0, b.fail(op, err)
	}
	for _, ix := range indexes {
		if _, err := tx.ExecContext(ctx, `DROP INDEX `+quoteIdent(ix.Name)); err != nil {
			return 0, b.fail(op, err)
		}
	}
	n, evicted, err := b.putEach(ctx, tx, op, entries)
	if err != nil {
		return 0, err
	}
	for _, ix := range indexes {
		if _, err := tx.ExecContext(ctx, ix.SQL); err != nil {
			return 0, b.fail(op+": rebuild index "+ix.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, b.fail(op, err)
	}
	b.evictions.Add(evicted)
	b.wakeCheckpointer()
	return n, nil
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// putChunk is how many entries putEach upserts per statement: enough that
// the driver's cost per statement (binding, a goroutine per call) no longer
// shows beside SQLite's own work, and few enough placeholders (19 each) for
// any SQLite build.
const putChunk = 100

// putEach upserts the entries in tx, putChunk rows per statement, and, with
// a cap, evicts once at the end. It returns how many entries it stored
// and how many it evicted.
func (b *Backend) putEach(ctx context.Context, tx *sqlx.Tx, op string, entries iter.Seq[*cache.Entry]) (stored int, evicted int64, err error) {
	var (
		full                [2]*sqlx.Stmt // entries and bodies statements for a full chunk
		entryArgs, bodyArgs []any
		keys                = map[string]bool{} // in the pending chunk
		n                   int
	)
	defer func() {
		for _, s := range full {
			if s != nil {
				s.Close()
			}
		}
	}()
	exec := func(i int, stmt func(int) string, rows int, args []any) error {
		if rows < putChunk {
			_, err := tx.ExecContext(ctx, stmt(rows), args...)
			return err
		}
		if full[i] == nil {
			var err error
			if full[i], err = tx.PreparexContext(ctx, stmt(rows)); err != nil {
				return err
			}
		}
		_, err := full[i].ExecContext(ctx, args...)
		return err
	}
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		if err := exec(0, upsertEntriesSQL, len(keys), entryArgs); err != nil {
			return b.fail(op, err)
		}
		if err := exec(1, upsertBodiesSQL, len(keys), bodyArgs); err != nil {
			return b.fail(op, err)
		}
		n += len(keys)
		entryArgs, bodyArgs = entryArgs[:0], bodyArgs[:0]
		clear(keys)
		return nil
	}
	for e := range entries {
		r, err := toRow(e)
		if err != nil {
			return 0, 0, fmt.Errorf("sqlite: %s: %q: %w", op, e.Key, err)
		}
		// A key seen again goes to the next statement, so that the later
		// entry wins as it would with Puts one by one.
		if keys[e.Key] {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
		if b.maxBytes > 0 && r.Size > b.maxBytes {
			// Too large to keep at all; the entry it replaces is outdated.
			if err := flush(); err != nil {
				return 0, 0, err
			}
			if err := b.markKey(ctx, tx, e.Key); err != nil {
				return 0, 0, b.fail(op, err)
			}
			continue
		}
		keys[e.Key] = true
		entryArgs = append(entryArgs, r.args()...)
		bodyArgs = append(bodyArgs, e.Key, nonNil(e.Body), requestBody(e.RequestBody))
		if len(keys) == putChunk {
			if err := flush(); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, 0, err
	}
	if b.maxBytes > 0 {
		// No id is 0 (rowids start at 1), so any entry may be evicted.
		if evicted, err = b.evict(ctx, tx, 0); err != nil {
			return 0, 0, b.fail(op, err)
		}
	}
	return n, evicted, nil
}

// commit commits tx and has the log checkpointed.
func (b *Backend) commit(tx *sqlx.Tx, op string) error {
	if err := tx.Commit(); err != nil {
		return b.fail(op, err)
	}
	b.wakeCheckpointer()
	return nil
}

// nonNil turns a nil body into an empty one, since bodies.body is NOT NULL.
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// createLRUIndex creates the index of eviction order that a cache with a
// cap needs, when it is missing: at a million entries, it takes a second
// or two. Without a cap, nothing reads it, and it would cost every store,
// hit and delete an index update, so it is not there (unless a process
// with a cap sharing the file made it). Deleted rows leave it: expired
// entries are mostly old ones, and until swept they would pile up at the
// start of the walk evictVictims takes on every store.
const createLRUIndex = `CREATE INDEX IF NOT EXISTS entries_lru ON entries (last_used) WHERE deleted = 0`

// evictVictims lists the least recently used entries but one, through the
// index createLRUIndex makes.
const evictVictims = `SELECT id, size FROM entries
	WHERE deleted = 0 AND id != ? ORDER BY last_used, id LIMIT 256`

// evict deletes least recently used entries other than keep until the
// stored bytes fit the cap, taking exactly as many as needed. It returns
// how many it evicted; the caller counts them once tx commits.
func (b *Backend) evict(ctx context.Context, tx *sqlx.Tx, keep int64) (int64, error) {
	var evicted int64
	for {
		var total int64
		if err := tx.GetContext(ctx, &total, `SELECT bytes FROM totals WHERE id = 1`); err != nil {
			return 0, err
		}
		excess := total - b.maxBytes
		if excess <= 0 {
			return evicted, nil
		}
		var victims []struct {
			ID   int64 `db:"id"`
			Size int64 `db:"size"`
		}
		if err := tx.SelectContext(ctx, &victims, evictVictims, keep); err != nil {
			return 0, err
		}
		if len(victims) == 0 {
			return evicted, nil // only keep is left, and it fits by itself
		}
		var ids []int64
		for _, v := range victims {
			ids = append(ids, v.ID)
			excess -= v.Size
			if excess <= 0 {
				break
			}
		}
		query, args, err := sqlx.In(`UPDATE entries SET deleted = 1 WHERE id IN (?)`, ids)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return 0, err
		}
		evicted += int64(len(ids))
		b.wakeSweeper() // it waits for the writer, and so for tx
	}
}

// markByKey marks the entry under key deleted.
const markByKey = `UPDATE entries SET deleted = 1 WHERE key = ? AND deleted = 0`

// markKey marks the entry under key deleted in tx, if there is one.
func (b *Backend) markKey(ctx context.Context, tx *sqlx.Tx, key string) error {
	res, err := tx.ExecContext(ctx, markByKey, key)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		b.wakeSweeper() // it waits for the writer, and so for tx
	}
	return nil
}

// Delete removes the entry under key and reports whether it was there.
func (b *Backend) Delete(ctx context.Context, key string) (bool, error) {
	op := fmt.Sprintf("delete %q", key)
	if err := b.check(op); err != nil {
		return false, err
	}
	res, err := b.writer.ExecContext(ctx, markByKey, key)
	if err != nil {
		return false, b.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, b.fail(op, err)
	}
	b.wakeCheckpointer()
	if n > 0 {
		b.wakeSweeper()
	}
	return n > 0, nil
}

// RecordHits adds the hits in one transaction. LastHit only moves forward,
// and so does the entry's place in the eviction order.
func (b *Backend) RecordHits(ctx context.Context, hits []cache.Hit) error {
	if err := b.check("record hits"); err != nil {
		return err
	}
	if len(hits) == 0 {
		return nil
	}
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return b.fail("record hits", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PreparexContext(ctx, `UPDATE entries SET
		hits = hits + ?1,
		last_hit = max(coalesce(last_hit, ?2), ?2),
		last_used = max(last_used, ?2)
		WHERE key = ?3 AND deleted = 0`)
	if err != nil {
		return b.fail("record hits", err)
	}
	defer stmt.Close()
	for _, h := range hits {
		if _, err := stmt.ExecContext(ctx, h.Count, h.Last.UnixNano(), h.Key); err != nil {
			return b.fail("record hits", err)
		}
	}
	return b.commit(tx, "record hits")
}

// Clear removes every entry, in one transaction.
func (b *Backend) Clear(ctx context.Context) error {
	if err := b.check("clear"); err != nil {
		return err
	}
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return b.fail("clear", err)
	}
	defer tx.Rollback()
	// No trigger counts the rows out as they go: only deleted rows are
	// removed elsewhere, and those the totals no longer count.
	for _, q := range []string{`DELETE FROM entries`, `UPDATE totals SET entries = 0, bytes = 0 WHERE id = 1`} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return b.fail("clear", err)
		}
	}
	return b.commit(tx, "clear")
}
