// Package sqlite is the default cache.Backend: one SQLite file, opened with
// sqlx over the pure-Go modernc.org/sqlite driver, its schema created and
// upgraded from the embedded files in migrations/.
//
// Writes go through a pool of one connection, so they queue in Go instead
// of contending for SQLite's write lock; reads use a pool of several
// connections, which WAL mode lets run alongside the writer.
//
// Two goroutines keep the writer's transactions short. Deletes only mark
// rows deleted (removing a row from the table's dozen indexes is what
// costs), and a sweeper removes marked rows a hundred at a time, pausing
// between batches. A checkpointer, on a connection of its own, copies the
// write-ahead log into the database file after writes, so that a commit
// on the writer does not do it and wait for its fsync.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/migrations"
)

var (
	_ cache.Backend     = (*Backend)(nil)
	_ cache.Sizer       = (*Backend)(nil)
	_ cache.BatchPutter = (*Backend)(nil)
	_ cache.Vacuumer    = (*Backend)(nil)
	_ cache.Pinger      = (*Backend)(nil)
)

// Backend stores entries in one SQLite database file. It is safe for
// concurrent use.
type Backend struct {
	path     string
	maxBytes int64 // 0: unbounded

	writer       *sqlx.DB // exactly one connection; every write goes here
	reader       *sqlx.DB // several connections, for reads only
	checkpointer *sqlx.DB // one connection, for background checkpoints

	getStmt   *sqlx.Stmt // on reader: the cache-hit hot path
	stampStmt *sqlx.Stmt // on reader: the hot tier's check of its copies

	// The background goroutines: sweep and checkpoint, each woken through
	// its channel (buffered, so that a wake never blocks and wakes
	// coalesce), both stopped by stop and waited for by Close.
	sweepWake, checkpointWake chan struct{}
	stop                      context.CancelFunc
	background                sync.WaitGroup
	sweepErr                  atomic.Pointer[error] // the last sweep's error, nil after a success

	// onBatch, if set, is told how long each transaction of a bulk delete
	// or of the sweeper held the writer; tests measure with it.
	onBatch atomic.Pointer[func(op string, held time.Duration)]

	closed atomic.Bool
}

// pragmas are applied by the driver to every new connection of both pools.
// synchronous=NORMAL is durable against process crashes in WAL mode and
// loses at most the last transactions on power loss: right for a cache.
var pragmas = []string{
	"busy_timeout(10000)",
	"foreign_keys(1)",
	"synchronous(NORMAL)",
	"journal_mode(WAL)",
	"temp_store(MEMORY)",
}

// The page cache of each connection, in KiB when negative. The writer's
// is the largest: purges and bulk loads walk many pages. A reader's
// cache is emptied whenever another connection commits (the writer does
// on every store, and every few seconds with hit times), and the hot
// tier keeps what is read often, so readers get SQLite's default; six
// connections of 8 MB made half of the 100 MiB the gateway may use at a
// million entries.
const (
	writerCacheSize = "-8000" // the writer's: 8 MB
	readerCacheSize = "-2000" // readers' and the checkpointer's: 2 MB
)

// writerAutocheckpoint is how many pages the write-ahead log may hold
// before a commit on the writer checkpoints it itself. The checkpointer
// normally does it long before; this bounds the log when writes come too
// fast for it to keep up (SQLite starts the log over only when a write
// transaction begins with every frame checkpointed).
const writerAutocheckpoint = 10_000 // 40 MB of 4 KiB pages

// Open opens (creating if needed) the database named by dsn and brings its
// schema up to date. The dsn has the form sqlite://PATH, where PATH is
// relative to the working directory (sqlite://cachegate.db,
// sqlite://./data/cache.db) or absolute (sqlite:///var/lib/cache.db). Its
// parent folders are created. The optional query parameter max_size caps
// the stored body bytes ("64MiB", "1GB", "500000"), evicting least recently
// used entries first.
func Open(dsn string) (*Backend, error) {
	path, maxBytes, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
	}
	b := &Backend{path: path, maxBytes: maxBytes}

	params := url.Values{}
	for _, p := range pragmas {
		params.Add("_pragma", p)
	}
	// base: the readers' and the checkpointer's connections.
	base := params.Encode() + "&_pragma=" + url.QueryEscape("cache_size("+readerCacheSize+")")
	params.Add("_pragma", "cache_size("+writerCacheSize+")")
	// BEGIN IMMEDIATE takes the write lock up front, so a write transaction
	// never fails half-way on upgrading a read lock.
	params.Set("_txlock", "immediate")
	params.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerAutocheckpoint))
	if b.writer, err = sqlx.Open("sqlite", path+"?"+params.Encode()); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	b.writer.SetMaxOpenConns(1)
	b.writer.SetMaxIdleConns(1)
	b.writer.SetConnMaxIdleTime(0)
	b.writer.SetConnMaxLifetime(0)
	if err := b.migrate(context.Background()); err != nil {
		b.writer.Close()
		return nil, err
	}
	if maxBytes > 0 {
		if _, err := b.writer.Exec(createLRUIndex); err != nil {
			b.writer.Close()
			return nil, fmt.Errorf("sqlite: open %s: create eviction index: %w", path, err)
		}
	}

	params, _ = url.ParseQuery(base)
	params.Set("_txlock", "deferred")
	params.Add("_pragma", "query_only(1)")
	if b.reader, err = sqlx.Open("sqlite", path+"?"+params.Encode()); err != nil {
		b.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.NumCPU())
	b.reader.SetMaxOpenConns(n)
	b.reader.SetMaxIdleConns(n)
	b.reader.SetConnMaxIdleTime(0)
	b.reader.SetConnMaxLifetime(0)

	if b.getStmt, err = b.reader.Preparex(`SELECT ` + entryColumns + `, b.body, b.request_body
		FROM entries e JOIN bodies b ON b.id = e.id WHERE e.key = ? AND e.deleted = 0`); err != nil {
		b.reader.Close()
		b.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: prepare get: %w", path, err)
	}
	if b.stampStmt, err = b.reader.Preparex(`SELECT created, expires, size FROM entries WHERE key = ? AND deleted = 0`); err != nil {
		b.getStmt.Close()
		b.reader.Close()
		b.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: prepare stamp: %w", path, err)
	}

	// A checkpoint reads the log and writes the database file without
	// its page cache, so the connection needs no more than the pragmas.
	if b.checkpointer, err = sqlx.Open("sqlite", path+"?"+base); err != nil {
		b.stampStmt.Close()
		b.getStmt.Close()
		b.reader.Close()
		b.writer.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	b.checkpointer.SetMaxOpenConns(1)
	b.checkpointer.SetMaxIdleConns(1)
	b.checkpointer.SetConnMaxIdleTime(0)
	b.checkpointer.SetConnMaxLifetime(0)

	ctx, stop := context.WithCancel(context.Background())
	b.stop = stop
	b.sweepWake = make(chan struct{}, 1)
	b.checkpointWake = make(chan struct{}, 1)
	b.background.Add(2)
	go b.sweepLoop(ctx)
	go b.checkpointLoop(ctx)
	b.wakeSweeper() // rows deleted before the last Close, if any
	return b, nil
}

// parseDSN splits a sqlite:// DSN into a file path and the size cap.
func parseDSN(dsn string) (path string, maxBytes int64, err error) {
	rest, ok := strings.CutPrefix(dsn, "sqlite://")
	if !ok {
		return "", 0, fmt.Errorf("sqlite: dsn %q: want sqlite://PATH[?max_size=64MiB]: %w", dsn, cache.ErrInvalid)
	}
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", 0, fmt.Errorf("sqlite: dsn %q: empty path; want sqlite://PATH, e.g. sqlite://cachegate.db: %w", dsn, cache.ErrInvalid)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", 0, fmt.Errorf("sqlite: dsn %q: %v: %w", dsn, err, cache.ErrInvalid)
	}
	for k := range q {
		if k != "max_size" {
			return "", 0, fmt.Errorf("sqlite: dsn %q: unknown parameter %q (accepted: max_size): %w", dsn, k, cache.ErrInvalid)
		}
	}
	if s := q.Get("max_size"); s != "" {
		n, err := humanize.ParseBytes(s)
		if err != nil || n > 1<<62 {
			return "", 0, fmt.Errorf("sqlite: dsn %q: bad max_size %q: want a size like 64MiB or 1GB: %w", dsn, s, cache.ErrInvalid)
		}
		maxBytes = int64(n)
	}
	return filepath.Clean(path), maxBytes, nil
}

// migrate applies the embedded migrations not yet recorded in the
// migrations table, in name order, each in its own transaction, as WTF
// Dial's sqlite.DB.migrate does.
func (b *Backend) migrate(ctx context.Context) error {
	if _, err := b.writer.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS migrations (
		name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: create migrations table: %w", err)
	}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return fmt.Errorf("sqlite: list migrations: %w", err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := b.migrateFile(ctx, name); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", name, err)
		}
	}
	return nil
}

func (b *Backend) migrateFile(ctx context.Context, name string) error {
	tx, err := b.writer.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM migrations WHERE name = ?`, name); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	script, err := fs.ReadFile(migrations.FS, name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(script)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`, name, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

// Path returns the database file's path.
func (b *Backend) Path() string { return b.path }

// MaxBytes returns the configured cap on body bytes, 0 if none.
func (b *Backend) MaxBytes() int64 { return b.maxBytes }

// fail wraps err for operation op, reporting cache.ErrClosed rather than
// the driver's complaint when the backend was closed meanwhile.
func (b *Backend) fail(op string, err error) error {
	if b.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, cache.ErrClosed)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// check returns a wrapped cache.ErrClosed after Close.
func (b *Backend) check(op string) error {
	if b.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, cache.ErrClosed)
	}
	return nil
}

// Ping checks that both pools can reach the database, and reports the
// sweeper's error if its last batch failed: deleted entries are then
// piling up, since it cannot write.
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.check("ping"); err != nil {
		return err
	}
	if err := b.reader.PingContext(ctx); err != nil {
		return b.fail("ping", err)
	}
	if err := b.writer.PingContext(ctx); err != nil {
		return b.fail("ping", err)
	}
	if err := b.sweepErr.Load(); err != nil {
		return b.fail("ping", *err)
	}
	return nil
}

// Vacuum removes the rows deleted but not swept yet, then rebuilds the
// database file, giving the space of deleted entries back to the operating
// system. It blocks writes while it runs.
func (b *Backend) Vacuum(ctx context.Context) error {
	if err := b.check("vacuum"); err != nil {
		return err
	}
	for {
		n, err := b.sweepBatch(ctx)
		if err != nil {
			return b.fail("vacuum", err)
		}
		if n < sweepBatchRows {
			break
		}
		b.checkpoint(ctx)
	}
	if _, err := b.writer.ExecContext(ctx, `VACUUM`); err != nil {
		return b.fail("vacuum", err)
	}
	b.wakeCheckpointer()
	return nil
}

// Close stops the background goroutines, interrupting a sweep (what it
// has not removed, the next Open sweeps), and closes the pools. A
// checkpoint on the last connection folds the WAL back into the database
// file.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("sqlite: close: %w", cache.ErrClosed)
	}
	b.stop()
	b.background.Wait()
	return errors.Join(b.getStmt.Close(), b.stampStmt.Close(), b.reader.Close(), b.writer.Close(), b.checkpointer.Close())
}

// Get returns the entry under key with its body. A Get does not write:
// hit counts arrive later through RecordHits, so a cache hit never waits
// for the write lock.
func (b *Backend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if err := b.check(fmt.Sprintf("get %q", key)); err != nil {
		return nil, false, err
	}
	e, err := scanEntry(b.getStmt.QueryRowContext(ctx, key), true)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, b.fail(fmt.Sprintf("get %q", key), err)
	}
	return e, true, nil
}

// Stamp returns the stamp of the entry stored under key (cache.Stamper):
// one lookup in the key's index and a read of its row, without the body
// or the fields that Get decodes.
func (b *Backend) Stamp(ctx context.Context, key string) (cache.Stamp, bool, error) {
	if err := b.check(fmt.Sprintf("stamp %q", key)); err != nil {
		return cache.Stamp{}, false, err
	}
	var created, expires, size int64
	err := b.stampStmt.QueryRowContext(ctx, key).Scan(&created, &expires, &size)
	if errors.Is(err, sql.ErrNoRows) {
		return cache.Stamp{}, false, nil
	}
	if err != nil {
		return cache.Stamp{}, false, b.fail(fmt.Sprintf("stamp %q", key), err)
	}
	s := cache.Stamp{Created: fromNanos(created), Size: size}
	if expires != cache.ExpiresOrdinal(time.Time{}) {
		s.Expires = time.Unix(0, expires)
	}
	return s, true, nil
}

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
	if b.maxBytes > 0 {
		if err := b.evict(ctx, tx, id); err != nil {
			return b.fail(op, err)
		}
	}
	return b.commit(tx, op)
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
	if _, err := b.putEach(ctx, tx, op, slices.Values(entries)); err != nil {
		return err
	}
	return b.commit(tx, op)
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
	n, err := b.putEach(ctx, tx, op, entries)
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
// a cap, evicts once at the end. It returns how many entries it stored.
func (b *Backend) putEach(ctx context.Context, tx *sqlx.Tx, op string, entries iter.Seq[*cache.Entry]) (int, error) {
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
			return 0, fmt.Errorf("sqlite: %s: %q: %w", op, e.Key, err)
		}
		// A key seen again goes to the next statement, so that the later
		// entry wins as it would with Puts one by one.
		if keys[e.Key] {
			if err := flush(); err != nil {
				return 0, err
			}
		}
		if b.maxBytes > 0 && r.Size > b.maxBytes {
			// Too large to keep at all; the entry it replaces is outdated.
			if err := flush(); err != nil {
				return 0, err
			}
			if err := b.markKey(ctx, tx, e.Key); err != nil {
				return 0, b.fail(op, err)
			}
			continue
		}
		keys[e.Key] = true
		entryArgs = append(entryArgs, r.args()...)
		bodyArgs = append(bodyArgs, e.Key, nonNil(e.Body), requestBody(e.RequestBody))
		if len(keys) == putChunk {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if b.maxBytes > 0 {
		// No id is 0 (rowids start at 1), so any entry may be evicted.
		if err := b.evict(ctx, tx, 0); err != nil {
			return 0, b.fail(op, err)
		}
	}
	return n, nil
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
// stored bytes fit the cap, taking exactly as many as needed.
func (b *Backend) evict(ctx context.Context, tx *sqlx.Tx, keep int64) error {
	for {
		var total int64
		if err := tx.GetContext(ctx, &total, `SELECT bytes FROM totals WHERE id = 1`); err != nil {
			return err
		}
		excess := total - b.maxBytes
		if excess <= 0 {
			return nil
		}
		var victims []struct {
			ID   int64 `db:"id"`
			Size int64 `db:"size"`
		}
		if err := tx.SelectContext(ctx, &victims, evictVictims, keep); err != nil {
			return err
		}
		if len(victims) == 0 {
			return nil // only keep is left, and it fits by itself
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
			return err
		}
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return err
		}
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

// List returns one page of entries, seeking with the cursor through the
// index of the sort column so a deep page costs what the first one does.
func (b *Backend) List(ctx context.Context, q cache.Query) (cache.Page, error) {
	if err := b.check("list"); err != nil {
		return cache.Page{}, err
	}
	query, args, s, err := listQuery(q)
	if err != nil {
		return cache.Page{}, fmt.Errorf("sqlite: list: %w", err)
	}
	rows, err := b.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return cache.Page{}, b.fail("list", err)
	}
	defer rows.Close()
	var page cache.Page
	for rows.Next() {
		e, err := scanEntry(rows, q.WithBody)
		if err != nil {
			return cache.Page{}, b.fail("list", err)
		}
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return cache.Page{}, b.fail("list", err)
	}
	// The query asks for one row more than a page: if it came, there is a
	// next page, and the last page never ends with an empty one.
	if limit := q.PageLimit(); len(page.Entries) > limit {
		page.Entries = page.Entries[:limit]
		page.Next = cache.CursorAfter(page.Entries[limit-1], s)
	}
	return page, nil
}

// listQuery builds the SQL of a List call and returns it with its
// arguments and the normalized sort.
func listQuery(q cache.Query) (string, []any, cache.Sort, error) {
	s, err := q.Sort.Normalize()
	if err != nil {
		return "", nil, s, err
	}
	where, args := whereClause(q.Filter)
	where = append([]string{"e.deleted = 0"}, where...)
	col := sortColumns[s.Field]
	dir, cmp := "ASC", ">"
	if s.Desc {
		dir, cmp = "DESC", "<"
	}
	if q.Cursor != "" {
		c, err := cache.ParseCursor(q.Cursor, s)
		if err != nil {
			return "", nil, s, err
		}
		where = append(where, fmt.Sprintf("(e.%s, e.key) %s (?, ?)", col, cmp))
		if s.Field == cache.SortURL {
			args = append(args, c.S, c.Key)
		} else {
			args = append(args, c.N, c.Key)
		}
	}
	var sb strings.Builder
	sb.WriteString("SELECT " + entryColumns)
	if q.WithBody {
		sb.WriteString(", b.body, b.request_body FROM entries e JOIN bodies b ON b.id = e.id")
	} else {
		sb.WriteString(" FROM entries e")
	}
	sb.WriteString(" WHERE " + strings.Join(where, " AND "))
	fmt.Fprintf(&sb, " ORDER BY e.%s %s, e.key %s LIMIT %d", col, dir, dir, q.PageLimit()+1)
	return sb.String(), args, s, nil
}

// sortColumns maps each sort field to its indexed column.
var sortColumns = map[cache.SortField]string{
	cache.SortCreated: "created",
	cache.SortExpires: "expires",
	cache.SortSize:    "size",
	cache.SortURL:     "url",
	cache.SortHits:    "hits",
}

// Count returns the number and total size of the matching entries; with an
// empty filter it reads the running totals instead of scanning.
func (b *Backend) Count(ctx context.Context, f cache.Filter) (cache.Totals, error) {
	if err := b.check("count"); err != nil {
		return cache.Totals{}, err
	}
	var t cache.Totals
	where, args := whereClause(f)
	var err error
	if len(where) == 0 {
		err = b.reader.QueryRowxContext(ctx, `SELECT entries, bytes FROM totals WHERE id = 1`).Scan(&t.Entries, &t.Bytes)
	} else {
		err = b.reader.QueryRowxContext(ctx, `SELECT COUNT(*), COALESCE(SUM(e.size), 0) FROM entries e WHERE e.deleted = 0 AND `+
			strings.Join(where, " AND "), args...).Scan(&t.Entries, &t.Bytes)
	}
	if err != nil {
		return cache.Totals{}, b.fail("count", err)
	}
	return t, nil
}

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
	return b.deleteWhere(ctx, "delete expired", "e.expires <= ?", now.UnixNano())
}

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
