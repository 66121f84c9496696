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
	"errors"
	"fmt"
	"io/fs"
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

	_ cache.EvictionCounter = (*Backend)(nil)
	_ cache.PurgeCounter    = (*Backend)(nil)
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

	// evictions and purged count, for metrics, the entries removed for
	// the size cap (once their transaction committed) and by DeleteExpired.
	evictions, purged atomic.Int64
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
