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
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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
}

var _ cache.Backend = (*Backend)(nil)

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

// get reads the entry under key with its body, re-reading the metadata
// when a writer replaced the body in between.
func (b *Backend) get(key string) (*cache.Entry, bool, error) {
	for range readRetries {
		m, ok, err := b.readMeta(key)
		if err != nil || !ok {
			return nil, false, err
		}
		body, err := b.readBody(m)
		if errors.Is(err, errBodyGone) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		e := m.entry()
		e.Body, e.RequestBody = body, m.RequestBody
		return e, true, nil
	}
	return nil, false, errors.New("body kept changing while being read")
}

// Get returns the entry under key. Invalid keys wrap cache.ErrInvalid.
func (b *Backend) Get(_ context.Context, key string) (*cache.Entry, bool, error) {
	if err := b.check(key, true); err != nil {
		return nil, false, fmt.Errorf("fs: get %q: %w", key, err)
	}
	e, ok, err := b.get(key)
	if err != nil {
		return nil, false, fmt.Errorf("fs: get %q: %w", key, err)
	}
	return e, ok, nil
}

// Put writes the body under a fresh name, then the metadata naming it,
// then removes the body the old metadata named.
func (b *Backend) Put(_ context.Context, e *cache.Entry) error {
	if err := b.check(e.Key, true); err != nil {
		return fmt.Errorf("fs: put %q: %w", e.Key, err)
	}
	mu := b.lock(e.Key)
	mu.Lock()
	defer mu.Unlock()
	if err := b.put(e); err != nil {
		return fmt.Errorf("fs: put %q: %w", e.Key, err)
	}
	return nil
}

func (b *Backend) put(e *cache.Entry) error {
	dir := b.shard(e.Key)
	if err := b.mkShard(dir); err != nil {
		return err
	}
	old, _, err := b.readMeta(e.Key)
	if err != nil {
		// Unreadable old metadata is replaced all the same; its body, if
		// any, is left to the sweep.
		old = nil
	}
	bodyFile := b.bodyName(e.Key)
	if err := b.writeFileAtomic(dir, bodyFile, e.Body, false); err != nil {
		return err
	}
	if err := b.writeMeta(newMeta(e, bodyFile)); err != nil {
		os.Remove(filepath.Join(dir, bodyFile))
		return err
	}
	if old != nil && old.BodyFile != bodyFile && !strings.ContainsAny(old.BodyFile, `/\`) {
		os.Remove(filepath.Join(dir, old.BodyFile))
	}
	return nil
}

// mkShard creates a shard directory if it is missing, and syncs the
// backend's directory after creating it: the entries renamed into it are
// synced with their own directory, which must not vanish on a power loss.
func (b *Backend) mkShard(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = syncDir(b.dir)
	return nil
}

func (b *Backend) writeMeta(m *meta) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	// The metadata rename is the commit point of a Put; syncing the
	// directory after it makes the commit survive a power loss.
	return b.writeFileAtomic(b.shard(m.Key), m.Key+".json", append(data, '\n'), true)
}

// writeFileAtomic writes data to dir/name through a synced temporary file
// in the same directory and a rename, so a reader sees the old file or
// the new one, never part of one.
func (b *Backend) writeFileAtomic(dir, name string, data []byte, sync bool) error {
	f, err := os.CreateTemp(dir, b.tmpPattern(name))
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if sync {
		_ = syncDir(dir)
	}
	return nil
}

// syncDir makes the names in dir (renames, new files and directories)
// survive a power loss. Some file systems cannot sync a directory: an
// error there is the caller's to ignore.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Delete removes the metadata (the entry is gone from that moment) and
// then the body.
func (b *Backend) Delete(_ context.Context, key string) (bool, error) {
	if err := b.check(key, true); err != nil {
		return false, fmt.Errorf("fs: delete %q: %w", key, err)
	}
	mu := b.lock(key)
	mu.Lock()
	defer mu.Unlock()
	ok, err := b.delete(key)
	if err != nil {
		return false, fmt.Errorf("fs: delete %q: %w", key, err)
	}
	return ok, nil
}

// delete removes key's files; the caller holds its lock.
func (b *Backend) delete(key string) (bool, error) {
	m, ok, err := b.readMeta(key)
	if err != nil {
		m = nil // remove unreadable metadata too; the sweep takes its body
	} else if !ok {
		return false, nil
	}
	err = os.Remove(b.metaPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if m != nil && !strings.ContainsAny(m.BodyFile, `/\`) {
		os.Remove(filepath.Join(b.shard(key), m.BodyFile))
	}
	return true, nil
}

// RecordHits rewrites the metadata of each hit entry atomically; the body
// is untouched.
func (b *Backend) RecordHits(_ context.Context, hits []cache.Hit) error {
	if err := b.check("", false); err != nil {
		return fmt.Errorf("fs: record hits: %w", err)
	}
	for _, h := range hits {
		if !cache.ValidKey(h.Key) {
			continue // cannot be stored, so there is nothing to count
		}
		if err := b.recordHit(h); err != nil {
			return fmt.Errorf("fs: record hits on %q: %w", h.Key, err)
		}
	}
	return nil
}

func (b *Backend) recordHit(h cache.Hit) error {
	mu := b.lock(h.Key)
	mu.Lock()
	defer mu.Unlock()
	m, ok, err := b.readMeta(h.Key)
	if err != nil || !ok {
		return err
	}
	m.Hits += h.Count
	if h.Last.After(m.LastHit) {
		m.LastHit = h.Last.Round(0)
	}
	return b.writeMeta(m)
}

// scan calls fn with the metadata of every entry, in no order.
func (b *Backend) scan(fn func(m *meta) error) error {
	shards, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(b.dir, s.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, f := range files {
			name := f.Name()
			key, isMeta := strings.CutSuffix(name, ".json")
			if !isMeta || !cache.ValidKey(key) {
				continue // bodies, temporary files, strangers
			}
			m, ok, err := readMetaFile(filepath.Join(b.dir, s.Name(), name))
			if err != nil {
				return err
			}
			if ok && m.Key == key {
				if err := fn(m); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// matching returns the entries (without bodies) that pass f.
func (b *Backend) matching(f cache.Filter) ([]*cache.Entry, error) {
	// Fix the clock once, so one call judges freshness at one instant.
	if f.Freshness != cache.AnyFreshness && f.Now.IsZero() {
		f.Now = time.Now()
	}
	var out []*cache.Entry
	err := b.scan(func(m *meta) error {
		if e := m.entry(); f.Match(e) {
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// List scans every metadata file, then filters, sorts and pages in memory.
func (b *Backend) List(_ context.Context, q cache.Query) (cache.Page, error) {
	if err := b.check("", false); err != nil {
		return cache.Page{}, fmt.Errorf("fs: list: %w", err)
	}
	s, err := q.Sort.Normalize()
	if err != nil {
		return cache.Page{}, fmt.Errorf("fs: list: %w", err)
	}
	var cur *cache.Cursor
	if q.Cursor != "" {
		c, err := cache.ParseCursor(q.Cursor, s)
		if err != nil {
			return cache.Page{}, fmt.Errorf("fs: list: %w", err)
		}
		cur = &c
	}
	all, err := b.matching(q.Filter)
	if err != nil {
		return cache.Page{}, fmt.Errorf("fs: list: %w", err)
	}
	if cur != nil {
		all = slices.DeleteFunc(all, func(e *cache.Entry) bool { return !cur.After(e) })
	}
	slices.SortFunc(all, func(x, y *cache.Entry) int {
		switch {
		case s.Less(x, y):
			return -1
		case s.Less(y, x):
			return 1
		}
		return 0
	})
	var page cache.Page
	if limit := q.PageLimit(); len(all) > limit {
		all = all[:limit]
		page.Next = cache.CursorAfter(all[limit-1], s)
	}
	for _, e := range all {
		if q.WithBody {
			full, ok, err := b.get(e.Key)
			if err != nil {
				return cache.Page{}, fmt.Errorf("fs: list: %w", err)
			}
			if !ok {
				continue // deleted since the scan
			}
			e = full
		}
		page.Entries = append(page.Entries, e)
	}
	return page, nil
}

// Count scans every metadata file.
func (b *Backend) Count(_ context.Context, f cache.Filter) (cache.Totals, error) {
	if err := b.check("", false); err != nil {
		return cache.Totals{}, fmt.Errorf("fs: count: %w", err)
	}
	all, err := b.matching(f)
	if err != nil {
		return cache.Totals{}, fmt.Errorf("fs: count: %w", err)
	}
	var t cache.Totals
	for _, e := range all {
		t.Entries++
		t.Bytes += e.Size
	}
	return t, nil
}

// DeleteMatching deletes the entries that pass f, checking each again
// under its lock, so an entry replaced meanwhile by one that does not
// match stays.
func (b *Backend) DeleteMatching(_ context.Context, f cache.Filter) (int64, error) {
	if err := b.check("", false); err != nil {
		return 0, fmt.Errorf("fs: delete matching: %w", err)
	}
	n, err := b.deleteMatching(f)
	if err != nil {
		return n, fmt.Errorf("fs: delete matching: %w", err)
	}
	return n, nil
}

func (b *Backend) deleteMatching(f cache.Filter) (int64, error) {
	if f.Freshness != cache.AnyFreshness && f.Now.IsZero() {
		f.Now = time.Now()
	}
	all, err := b.matching(f)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range all {
		deleted, err := func() (bool, error) {
			mu := b.lock(e.Key)
			mu.Lock()
			defer mu.Unlock()
			m, ok, err := b.readMeta(e.Key)
			if err != nil || !ok || !f.Match(m.entry()) {
				return false, err
			}
			return b.delete(e.Key)
		}()
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// DeleteExpired removes entries stale at now, then sweeps files left by
// crashed writes.
func (b *Backend) DeleteExpired(_ context.Context, now time.Time) (int64, error) {
	if err := b.check("", false); err != nil {
		return 0, fmt.Errorf("fs: delete expired: %w", err)
	}
	n, err := b.deleteMatching(cache.Filter{Freshness: cache.Expired, Now: now})
	if err != nil {
		return n, fmt.Errorf("fs: delete expired: %w", err)
	}
	if err := b.sweep(time.Now().Add(-sweepAge)); err != nil {
		return n, fmt.Errorf("fs: delete expired: %w", err)
	}
	return n, nil
}

// Clear removes every entry.
func (b *Backend) Clear(_ context.Context) error {
	if err := b.check("", false); err != nil {
		return fmt.Errorf("fs: clear: %w", err)
	}
	if _, err := b.deleteMatching(cache.Filter{}); err != nil {
		return fmt.Errorf("fs: clear: %w", err)
	}
	return nil
}

// sweep removes temporary files (a write that crashed before its rename)
// and body files that their key's metadata does not name (a crash between
// writing a body and its metadata, or before removing a replaced body):
// those of a Backend whose process has ended at once (its lock file is
// unlocked, see ownerPrefix), the others once last modified before cutoff,
// so that the sweep never races a write in progress. Readers never open
// either kind, so removing them changes nothing they see. Last it removes
// the lock files of ended processes.
func (b *Backend) sweep(cutoff time.Time) error {
	gone := map[string]bool{}
	isGone := func(owner string) bool {
		if owner == "" || owner == b.owner {
			return false
		}
		g, ok := gone[owner]
		if !ok {
			g = ownerGone(b.ownerPath(owner))
			gone[owner] = g
		}
		return g
	}
	shards, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, s := range shards {
		if !s.IsDir() {
			if owner, ok := strings.CutPrefix(s.Name(), ownerPrefix); ok {
				if o := strings.TrimSuffix(owner, ".new"); fileOwner(tmpPrefix+o) != "" {
					isGone(o)
				}
			}
			continue
		}
		dir := filepath.Join(b.dir, s.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			continue // vanished or unreadable: nothing to sweep there
		}
		for _, f := range files {
			name := f.Name()
			isTmp := strings.HasPrefix(name, tmpPrefix) || strings.HasPrefix(name, legacyTmpPrefix)
			if !isTmp && !strings.HasSuffix(name, ".body") {
				continue
			}
			if !isGone(fileOwner(name)) {
				info, err := f.Info()
				if err != nil || !info.ModTime().Before(cutoff) {
					continue
				}
			}
			if !isTmp && b.bodyInUse(name) {
				continue
			}
			os.Remove(filepath.Join(dir, name))
		}
	}
	for owner, g := range gone {
		if g {
			os.Remove(b.ownerPath(owner))
			os.Remove(b.ownerPath(owner) + ".new")
		}
	}
	return nil
}

// bodyInUse reports whether the body file name is the one its key's
// metadata names. On doubt (unreadable metadata) it says yes.
func (b *Backend) bodyInUse(name string) bool {
	key, _, ok := strings.Cut(name, ".")
	if !ok || !cache.ValidKey(key) {
		return true // not one of ours: leave it alone
	}
	mu := b.lock(key)
	mu.Lock()
	defer mu.Unlock()
	m, found, err := b.readMeta(key)
	if err != nil {
		return true
	}
	return found && m.BodyFile == name
}

// Close marks the backend closed; there is nothing to release.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("fs: close: %w", cache.ErrClosed)
	}
	b.unlockOwner()
	return nil
}
