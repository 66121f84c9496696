package fs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

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
	b.purged.Add(n)
	if err != nil {
		return n, fmt.Errorf("fs: delete expired: %w", err)
	}
	if err := b.sweep(time.Now().Add(-sweepAge)); err != nil {
		return n, fmt.Errorf("fs: delete expired: %w", err)
	}
	return n, nil
}

// Purged returns how many expired entries DeleteExpired removed.
func (b *Backend) Purged() int64 { return b.purged.Load() }

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
