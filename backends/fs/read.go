package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

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
