package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cachegate/cachegate/cache"
)

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
