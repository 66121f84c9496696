// Package fs stores cache entries as files a person can read: one
// directory per backend, each entry as indented JSON metadata plus its body
// in a file of its own, in subdirectories named after the first two
// characters of the key:
//
//	DIR/ab/abcdef….json                        the metadata, naming the body file
//	DIR/ab/abcdef….5e6f7a8b9c0d-1f2e3d4c.body  the body, byte for byte
//	DIR/.owner-5e6f7a8b9c0d                    locked by the process that wrote it while it runs
//
// Writes are atomic: a file is written under a temporary name in the same
// directory, synced and renamed into place. A Put writes the body first,
// under a name of its own, and the metadata last, so the rename of the
// metadata is the moment the new entry appears, whole; the old body is
// removed after it. Readers need no lock, so any number of processes may
// read the directory while one process writes it (two writing processes
// are not supported: they could leave an unreferenced body file behind,
// which the sweep removes, but not a torn entry).
//
// Listing, counting and deleting by filter read every metadata file: the
// backend suits caches of thousands of entries, not millions; use SQLite
// or MongoDB for those.
package fs

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Format is the version of the metadata files' layout, stored in each.
const Format = 1

// tmpPrefix starts the names of files being written, followed by the
// owner of the writing Backend and a dot. Nothing reads them; a crash
// leaves them behind for the sweep. legacyTmpPrefix started them before
// they named their owner.
const (
	tmpPrefix       = ".tmp."
	legacyTmpPrefix = ".tmp-"
)

// ownerPrefix starts the name of each open Backend's lock file in the
// directory, followed by its owner: a random name that the temporary and
// body files it writes carry too. Its process holds a flock on the file
// while it runs, so that Open can remove the leftovers of a process that
// crashed at once, whatever their age, and never those of one still
// writing (see ownerGone).
const ownerPrefix = ".owner-"

// sweepAge is how old a temporary or unreferenced body file must be
// before the sweep removes it, so that it never races a write in
// progress (in this process or in another).
const sweepAge = 10 * time.Minute

// readRetries bounds how often Get re-reads an entry whose body was
// replaced between reading its metadata and opening its body.
const readRetries = 10

// Backend is a cache.Backend in a directory. It is safe for concurrent
// use.
type Backend struct {
	dir       string
	owner     string   // names the files this Backend writes
	ownerLock *os.File // held while it is open
	closed    atomic.Bool
	// locks serialise writers of one key within this process (Put,
	// Delete, RecordHits each read, then replace, the metadata).
	locks [64]sync.Mutex
	// purged counts the expired entries DeleteExpired removed, for metrics.
	purged atomic.Int64
}

var (
	_ cache.Backend      = (*Backend)(nil)
	_ cache.PurgeCounter = (*Backend)(nil)
)

// ParseDSN returns the directory a file:// DSN names: file:///abs/dir or
// file://./relative/dir (also file://relative/dir).
func ParseDSN(dsn string) (string, error) {
	rest, ok := strings.CutPrefix(dsn, "file://")
	if !ok {
		return "", fmt.Errorf("fs: DSN %q: want file:///path/to/dir or file://./relative/dir: %w", dsn, cache.ErrInvalid)
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	dir, err := url.PathUnescape(rest)
	if err != nil || dir == "" {
		return "", fmt.Errorf("fs: DSN %q: no directory: %w", dsn, cache.ErrInvalid)
	}
	return filepath.Clean(filepath.FromSlash(dir)), nil
}

// Open opens (creating it if needed) the directory named by dsn (see
// ParseDSN) and removes what an earlier crash left behind.
func Open(dsn string) (*Backend, error) {
	dir, err := ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("fs: open %s: %w", dir, err)
	}
	_ = syncDir(filepath.Dir(dir)) // best effort: the parent may not be readable
	b := &Backend{dir: dir, owner: randomHex(ownerBytes)}
	if b.ownerLock, err = lockOwner(b.ownerPath(b.owner)); err != nil {
		// A directory this process may not write (a read-only export, a
		// read-only mount): it names its files, if it writes any, as
		// before owners, and they fall to the age rule.
		b.owner = ""
	}
	if err := b.sweep(time.Now().Add(-sweepAge)); err != nil {
		b.unlockOwner()
		return nil, fmt.Errorf("fs: open %s: %w", dir, err)
	}
	return b, nil
}

func (b *Backend) ownerPath(owner string) string {
	return filepath.Join(b.dir, ownerPrefix+owner)
}

// unlockOwner removes the Backend's lock file and releases its lock.
func (b *Backend) unlockOwner() {
	if b.ownerLock != nil {
		os.Remove(b.ownerPath(b.owner))
		b.ownerLock.Close()
	}
}

// bodyName returns a fresh name for a body file of key.
func (b *Backend) bodyName(key string) string {
	if b.owner == "" {
		return key + "." + randomHex(4) + ".body"
	}
	return key + "." + b.owner + "-" + randomHex(4) + ".body"
}

// tmpPattern is the os.CreateTemp pattern of a temporary file that
// becomes name.
func (b *Backend) tmpPattern(name string) string {
	if b.owner == "" {
		return legacyTmpPrefix + name + "-*"
	}
	return tmpPrefix + b.owner + "." + name + "-*"
}

// fileOwner returns the owner named by a temporary or body file's name, or
// "" when it names none (written before files named their owner).
func fileOwner(name string) string {
	var owner string
	if rest, ok := strings.CutPrefix(name, tmpPrefix); ok {
		owner, _, _ = strings.Cut(rest, ".")
	} else if rest, ok := strings.CutSuffix(name, ".body"); ok && !strings.HasPrefix(name, legacyTmpPrefix) {
		// KEY.OWNER-RANDOM.body; before owners, KEY.RANDOM.body.
		_, rest, _ = strings.Cut(rest, ".")
		owner, _, _ = strings.Cut(rest, "-")
	}
	if _, err := hex.DecodeString(owner); err != nil || len(owner) != 2*ownerBytes {
		return ""
	}
	return owner
}

// ownerBytes is the length of an owner's random name, in bytes.
const ownerBytes = 6

// Dir returns the backend's directory.
func (b *Backend) Dir() string { return b.dir }

// meta is the metadata file. Times are RFC 3339 with nanoseconds; an
// absent expires means the entry never expires.
type meta struct {
	Format        int         `json:"format"`
	Key           string      `json:"key"`
	BaseKey       string      `json:"base_key"`
	Upstream      string      `json:"upstream"`
	Method        string      `json:"method"`
	URL           string      `json:"url"`
	Status        int         `json:"status"`
	ContentType   string      `json:"content_type"`
	Size          int64       `json:"size"`
	BodyFile      string      `json:"body_file"` // in the same directory
	RequestTime   time.Time   `json:"request_time,omitzero"`
	Created       time.Time   `json:"created"`
	Expires       time.Time   `json:"expires,omitzero"`
	ETag          string      `json:"etag,omitempty"`
	LastModified  string      `json:"last_modified,omitempty"`
	Hits          int64       `json:"hits"`
	LastHit       time.Time   `json:"last_hit,omitzero"`
	Reason        string      `json:"reason,omitempty"`
	RequestHeader http.Header `json:"request_header,omitempty"`
	Header        http.Header `json:"header,omitempty"`
	// RequestBody is the body of the request behind a non-GET entry, in
	// base64, so that an admin revalidation can send it again. Files
	// written before it existed lack it: their entries have none.
	RequestBody []byte `json:"request_body,omitempty"`
}

func newMeta(e *cache.Entry, bodyFile string) *meta {
	return &meta{
		Format:        Format,
		Key:           e.Key,
		BaseKey:       e.BaseKey,
		Upstream:      e.Upstream,
		Method:        e.Method,
		URL:           e.URL,
		Status:        e.Status,
		ContentType:   e.ContentType,
		Size:          int64(len(e.Body)),
		BodyFile:      bodyFile,
		RequestTime:   e.RequestTime.Round(0), // drop the monotonic reading
		Created:       e.Created.Round(0),
		Expires:       e.Expires.Round(0),
		ETag:          e.ETag,
		LastModified:  e.LastModified,
		Hits:          e.Hits,
		LastHit:       e.LastHit.Round(0),
		Reason:        e.Reason,
		RequestHeader: e.RequestHeader.Clone(),
		Header:        e.Header.Clone(),
		RequestBody:   e.RequestBody,
	}
}

func (m *meta) entry() *cache.Entry {
	return &cache.Entry{
		Key:           m.Key,
		BaseKey:       m.BaseKey,
		Upstream:      m.Upstream,
		Method:        m.Method,
		URL:           m.URL,
		RequestHeader: m.RequestHeader,
		Status:        m.Status,
		Header:        m.Header,
		Size:          m.Size,
		ContentType:   m.ContentType,
		RequestTime:   m.RequestTime,
		Created:       m.Created,
		Expires:       m.Expires,
		ETag:          m.ETag,
		LastModified:  m.LastModified,
		Hits:          m.Hits,
		LastHit:       m.LastHit,
		Reason:        m.Reason,
	}
}

// shard returns the subdirectory of key. ValidKey has checked the key,
// so it cannot climb out of the directory.
func (b *Backend) shard(key string) string {
	return filepath.Join(b.dir, key[:min(2, len(key))])
}

func (b *Backend) metaPath(key string) string {
	return filepath.Join(b.shard(key), key+".json")
}

func (b *Backend) lock(key string) *sync.Mutex {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &b.locks[h%uint32(len(b.locks))]
}

// check returns ErrClosed after Close, and ErrInvalid for a key that
// could name a path.
func (b *Backend) check(key string, checkKey bool) error {
	if b.closed.Load() {
		return cache.ErrClosed
	}
	if checkKey && !cache.ValidKey(key) {
		return fmt.Errorf("bad key: %w", cache.ErrInvalid)
	}
	return nil
}

// readMeta reads the metadata of key; ok is false if there is none.
func (b *Backend) readMeta(key string) (*meta, bool, error) {
	return readMetaFile(b.metaPath(key))
}

func readMetaFile(path string) (*meta, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var m meta
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	return &m, true, nil
}

// errBodyGone reports a body file removed by a writer after its metadata
// was read.
var errBodyGone = errors.New("body file gone")

func (b *Backend) readBody(m *meta) ([]byte, error) {
	if m.BodyFile == "" || strings.ContainsAny(m.BodyFile, `/\`) {
		return nil, fmt.Errorf("%s: bad body_file %q", m.Key, m.BodyFile)
	}
	body, err := os.ReadFile(filepath.Join(b.shard(m.Key), m.BodyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errBodyGone
	}
	if err != nil {
		return nil, err
	}
	if int64(len(body)) != m.Size {
		return nil, fmt.Errorf("%s: body file holds %d bytes, metadata says %d", m.Key, len(body), m.Size)
	}
	return body, nil
}

// Close marks the backend closed; there is nothing to release.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("fs: close: %w", cache.ErrClosed)
	}
	b.unlockOwner()
	return nil
}
