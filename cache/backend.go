package cache

import (
	"context"
	"errors"
	"io"
	"syscall"
	"time"
)

// ErrInvalid is wrapped by errors caused by the caller's input (a bad key,
// a malformed cursor, an unknown sort field). Callers map it to 400.
var ErrInvalid = errors.New("invalid")

// ErrClosed is returned by a backend used after Close.
var ErrClosed = errors.New("backend closed")

// DefaultBackendName is the name the server's main backend (-backend) is
// reachable by, and the backend used when a request or an upstream names none.
const DefaultBackendName = "default"

// Backend stores entries. Implementations are safe for concurrent use.
//
// A cache miss is not an error: Get reports it with ok == false. Errors are
// reserved for the backend failing (I/O, connection loss) or bad input
// (wrapping ErrInvalid).
type Backend interface {
	// Get returns the entry stored under key, with its body. If there is no
	// such entry, ok is false and err is nil. The returned entry belongs to
	// the caller.
	Get(ctx context.Context, key string) (e *Entry, ok bool, err error)

	// Put stores e under e.Key, replacing any entry with that key as a
	// whole: a reader sees the old entry or the new one, never a mix. Put
	// does not keep a reference to e or its body. Hits and LastHit are
	// stored as given. A backend with a size cap evicts least recently used
	// entries to make room.
	Put(ctx context.Context, e *Entry) error

	// Delete removes the entry stored under key. It reports whether an
	// entry was there; a missing key is not an error.
	Delete(ctx context.Context, key string) (bool, error)

	// RecordHits adds hit counts and last-hit times to existing entries.
	// Hits for keys no longer stored are ignored. The gateway batches hits
	// and calls this in the background, so a hit never waits for a write.
	RecordHits(ctx context.Context, hits []Hit) error

	// List returns one page of entries matching q.Filter in q.Sort order,
	// starting after q.Cursor. Entries carry no body unless q.WithBody.
	// Page.Next is empty on the last page. Pagination is by key set, so a
	// deep page costs about what the first one does.
	List(ctx context.Context, q Query) (Page, error)

	// Count returns the number of entries matching f and their total body
	// size in bytes.
	Count(ctx context.Context, f Filter) (Totals, error)

	// DeleteMatching removes every entry matching f and returns how many it
	// removed. An empty filter matches everything.
	DeleteMatching(ctx context.Context, f Filter) (int64, error)

	// DeleteExpired removes entries that are stale at now and returns how
	// many it removed.
	DeleteExpired(ctx context.Context, now time.Time) (int64, error)

	// Clear removes every entry.
	Clear(ctx context.Context) error

	// Close releases the backend's resources. Calls after Close return
	// ErrClosed.
	Close() error
}

// Hit is one batch of cache hits on one entry, for Backend.RecordHits.
type Hit struct {
	Key   string
	Count int64
	Last  time.Time
}

// Totals counts entries and their stored bytes.
type Totals struct {
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// Page is one page of a listing.
type Page struct {
	Entries []*Entry
	// Next is the cursor of the following page; empty when this is the last.
	Next string
}

// Query selects, orders and pages entries for Backend.List.
type Query struct {
	Filter Filter
	Sort   Sort
	// Limit caps the page size; 0 means DefaultLimit, above MaxLimit is
	// clamped to MaxLimit.
	Limit int
	// Cursor is a Page.Next from an earlier call with the same filter and
	// sort, or empty for the first page.
	Cursor string
	// WithBody asks for bodies too (exports use it).
	WithBody bool
}

// Page size bounds for Query.Limit.
const (
	DefaultLimit = 50
	MaxLimit     = 1000
)

// PageLimit returns the effective page size of q.
func (q Query) PageLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

// Sizer is implemented by backends that can report how full they are
// relative to a configured cap.
type Sizer interface {
	// MaxBytes returns the configured cap on stored bytes, 0 if none.
	MaxBytes() int64
}

// Vacuumer is implemented by backends that can give freed space back to the
// operating system (SQLite's VACUUM).
type Vacuumer interface {
	Vacuum(ctx context.Context) error
}

// Stamper is implemented by backends that can tell, at less cost than
// Get, whether the entry stored under a key is still one read before: an
// in-memory tier in front of a backend other processes also write to
// asks it each time its copy has been trusted for as long as it may be
// (SQLite: one index lookup, no body, no fields decoded). ok is false
// when no entry is stored under key.
type Stamper interface {
	Stamp(ctx context.Context, key string) (s Stamp, ok bool, err error)
}

// Stamp identifies a stored version of an entry: storing a response
// anew gives it a new response time (Created) at nanosecond resolution,
// and with it a new stamp. Size and Expires are in it as well, for a
// store of a different entry that reuses the time to the nanosecond.
type Stamp struct {
	Created, Expires time.Time
	Size             int64
}

// StampOf is the stamp of e.
func StampOf(e *Entry) Stamp { return Stamp{Created: e.Created, Expires: e.Expires, Size: e.Size} }

// Same reports whether two stamps name the same stored version.
func (s Stamp) Same(t Stamp) bool {
	return s.Created.Equal(t.Created) && s.Expires.Equal(t.Expires) && s.Size == t.Size
}

// Pinger is implemented by backends whose health can be checked cheaply.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Peeker is implemented by backends that can hand out a stored entry
// without copying it, for the cache-hit hot path. The entry returned by
// Peek is shared: callers must treat it, its headers and its body as
// read-only. Miss and error behave as in Get.
type Peeker interface {
	Peek(ctx context.Context, key string) (e *Entry, ok bool, err error)
}

// MemoryPeeker is implemented by backends, or tiers in front of them, that
// can tell without any I/O whether they hold an entry in memory. It lets a
// connection front end answer hits without blocking and hand everything
// else, misses included, to the full path, which then looks again with
// Peek. The entry is shared and read-only, as with Peek.
type MemoryPeeker interface {
	PeekMemory(key string) (e *Entry, ok bool)
}

// BodyFilePeeker is a MemoryPeeker that also keeps large bodies in
// files, which the kernel can send to a socket without copying them
// through the process (sendfile). body is nil when the entry's body has
// no file. The file holds exactly e.Body from offset 0; it is the
// backend's: read it with ReadAt or sendfile at explicit offsets, never
// close it, and be ready for it to be closed under you (the entry left
// memory), then send e.Body.
type BodyFilePeeker interface {
	PeekMemoryFile(key string) (e *Entry, body BodyFile, ok bool)
}

// BodyFile is a file holding a body: read it with ReadAt, or send it with
// sendfile through its descriptor (SyscallConn). An *os.File is one.
type BodyFile interface {
	io.ReaderAt
	syscall.Conn
}

// BatchPutter is implemented by backends that store many entries at less
// cost than one Put each (SQLite: one transaction). PutMany stores every
// entry as Put would; on error, none or some of them may be stored, but
// never part of one entry.
type BatchPutter interface {
	PutMany(ctx context.Context, entries []*Entry) error
}

// EvictionCounter is implemented by backends with a size cap: Evictions
// returns how many entries the backend removed to make room since it was
// opened (by this process). Metrics read it at each scrape.
type EvictionCounter interface {
	Evictions() int64
}

// PurgeCounter is implemented by backends that count the expired entries
// DeleteExpired removed since they were opened (by this process).
type PurgeCounter interface {
	Purged() int64
}
