package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Progress is how far a transfer has come. The Progress callbacks of the
// options receive it as the transfer goes, and Result carries the last one.
type Progress struct {
	// Done counts the entries written (exported, imported, copied).
	Done int64 `json:"done"`
	// Total is the number of entries expected, counted when an export or
	// copy starts (entries stored or removed meanwhile can make Done end
	// above or below it); 0 for an import, whose size is not known ahead.
	Total int64 `json:"total"`
	// Failed counts the entries that could not be transferred.
	Failed int64 `json:"failed"`
	// Bytes sums the body bytes of the entries written.
	Bytes int64 `json:"bytes"`
	// TotalBytes is the body bytes expected, counted with Total.
	TotalBytes int64 `json:"total_bytes"`
	// Read counts the input bytes consumed by an import, so a caller that
	// knows the input's size can show how far along it is.
	Read int64 `json:"read,omitempty"`
}

// MaxErrors caps Result.Errors; Result.Failed counts every failure.
const MaxErrors = 100

// Result is what a transfer did.
type Result struct {
	Progress
	// Errors lists the first MaxErrors entry failures, in order.
	Errors []EntryError `json:"errors,omitempty"`
	// Elapsed is how long the transfer took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// EntryError is one entry that could not be transferred.
type EntryError struct {
	// Line is the 1-based line of the input an import failed on (the
	// header is line 1); 0 for exports and copies.
	Line int64
	// Key is the entry's key when it is known.
	Key string
	// Err is what went wrong.
	Err error
}

// Error renders the error with its line and key.
func (e *EntryError) Error() string {
	switch {
	case e.Line > 0 && e.Key != "":
		return fmt.Sprintf("line %d (key %q): %v", e.Line, e.Key, e.Err)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %v", e.Line, e.Err)
	case e.Key != "":
		return fmt.Sprintf("key %q: %v", e.Key, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *EntryError) Unwrap() error { return e.Err }

// MarshalJSON renders the error for the admin API's job status.
func (e EntryError) MarshalJSON() ([]byte, error) {
	msg := ""
	if e.Err != nil {
		msg = e.Err.Error()
	}
	return json.Marshal(struct {
		Line  int64  `json:"line,omitempty"`
		Key   string `json:"key,omitempty"`
		Error string `json:"error"`
	}{e.Line, e.Key, msg})
}

// ErrorMode says what a transfer does when one entry fails.
type ErrorMode int

const (
	// Stop ends the transfer at the first failed entry and returns its
	// error. It is the zero value: a damaged input stops unless the caller
	// chose otherwise.
	Stop ErrorMode = iota
	// Skip records the failure in Result and goes on with the next entry.
	Skip
)

// ParseErrorMode reads "stop" or "skip".
func ParseErrorMode(s string) (ErrorMode, error) {
	switch s {
	case "stop":
		return Stop, nil
	case "skip":
		return Skip, nil
	}
	return Stop, fmt.Errorf("unknown error mode %q (accepted: skip, stop)", s)
}

// tracker keeps a transfer's counters and reports them.
type tracker struct {
	res    Result
	start  time.Time
	report func(Progress)
}

func newTracker(report func(Progress)) *tracker {
	return &tracker{start: time.Now(), report: report}
}

func (t *tracker) progress() {
	if t.report != nil {
		t.report(t.res.Progress)
	}
}

func (t *tracker) done(bytes int64) {
	t.res.Done++
	t.res.Bytes += bytes
	t.progress()
}

func (t *tracker) fail(e *EntryError) {
	t.res.Failed++
	if len(t.res.Errors) < MaxErrors {
		t.res.Errors = append(t.res.Errors, *e)
	}
	t.progress()
}

func (t *tracker) result() Result {
	t.res.Elapsed = time.Since(t.start)
	return t.res
}

// pageSize is how many entries' metadata a transfer lists at a time.
const pageSize = 100

// chunkBytes bounds the bodies fetched at once: the entries of a page are
// fetched in chunks of at most this many body bytes, or one entry when a
// single body is larger. With pageSize it bounds what a transfer holds. A
// variable only so that tests can lower it.
var chunkBytes int64 = 4 << 20

// order is the listing order of every transfer (see the package comment
// for why URL).
var order = cache.Sort{Field: cache.SortURL}

// pin fixes the time freshness is judged at, so that every page and the
// count up front agree on which entries are fresh.
func pin(f cache.Filter) cache.Filter {
	if f.Freshness != cache.AnyFreshness && f.Now.IsZero() {
		f.Now = time.Now()
	}
	return f
}

// walk calls fn with every entry of b matching f, bodies included, in
// URL order. It lists metadata a page at a time and then fetches bodies
// by key in chunks bounded by bytes, so memory stays bounded by chunkBytes
// plus one page of metadata whatever the entries' sizes. An entry deleted
// between the two steps is silently left out: it is no longer in the
// cache. walk stops at the first error of fn or the backend, or when ctx
// is done.
func walk(ctx context.Context, b cache.Backend, f cache.Filter, fn func(*cache.Entry) error) error {
	q := cache.Query{Filter: f, Sort: order, Limit: pageSize}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := b.List(ctx, q)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for start := 0; start < len(page.Entries); {
			end, sum := start+1, page.Entries[start].Size
			for end < len(page.Entries) && sum+page.Entries[end].Size <= chunkBytes {
				sum += page.Entries[end].Size
				end++
			}
			keys := make([]string, 0, end-start)
			for _, e := range page.Entries[start:end] {
				keys = append(keys, e.Key)
			}
			// The listed keys already pass f (f.Keys included), so
			// replacing f.Keys with them keeps f's meaning: an entry that
			// changed in between is taken as it is now if it still
			// matches.
			cf := f
			cf.Keys = keys
			full, err := b.List(ctx, cache.Query{Filter: cf, Sort: order, Limit: len(keys), WithBody: true})
			if err != nil {
				return fmt.Errorf("list bodies: %w", err)
			}
			for i, e := range full.Entries {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(e); err != nil {
					return err
				}
				full.Entries[i] = nil // let the body go as soon as it is written
			}
			start = end
		}
		if page.Next == "" {
			return nil
		}
		q.Cursor = page.Next
	}
}

// A copy into a cache.BatchPutter stores this many entries, or this many
// bytes of bodies, per batch: few enough that memory stays bounded.
const (
	copyBatch      = 200
	copyBatchBytes = 8 << 20
)

// CopyOptions configure Copy.
type CopyOptions struct {
	// Filter selects the entries to copy; the zero Filter copies all.
	Filter cache.Filter
	// OnError says whether a failed Put into the destination stops the
	// copy (the default) or is recorded and skipped.
	OnError ErrorMode
	// Progress, when set, is called after every entry, on the calling
	// goroutine; it should be quick.
	Progress func(Progress)
}

// Copy puts every entry of from that matches opts.Filter into to,
// replacing entries with the same keys there, and returns what it did.
// Each entry is stored whole (one Put, or batches of whole entries when
// the destination is a cache.BatchPutter), so the destination never holds
// half an entry. It
// returns an error (wrapping ctx.Err() when cancelled) when the source
// fails, the context ends, or a Put fails under OnError Stop; the Result
// then counts what was copied until that point.
func Copy(ctx context.Context, from, to cache.Backend, opts CopyOptions) (Result, error) {
	t := newTracker(opts.Progress)
	f := pin(opts.Filter)
	totals, err := from.Count(ctx, f)
	if err != nil {
		return t.result(), fmt.Errorf("transfer: copy: count: %w", err)
	}
	t.res.Total, t.res.TotalBytes = totals.Entries, totals.Bytes
	t.progress()
	put := func(e *cache.Entry) error {
		if err := to.Put(ctx, e); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			ee := &EntryError{Key: e.Key, Err: err}
			t.fail(ee)
			if opts.OnError == Stop {
				return ee
			}
			return nil
		}
		t.done(int64(len(e.Body)))
		return nil
	}
	bp, batched := to.(cache.BatchPutter)
	var batch []*cache.Entry
	var batchBytes int
	// flush stores the batch in one PutMany (one SQLite transaction instead
	// of one each); when that fails it puts them one by one, so the error
	// names its entry and OnError applies as without batching.
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		defer func() { batch, batchBytes = batch[:0], 0 }()
		if err := bp.PutMany(ctx, batch); err == nil {
			for _, e := range batch {
				t.done(int64(len(e.Body)))
			}
			return nil
		}
		for _, e := range batch {
			if err := put(e); err != nil {
				return err
			}
		}
		return nil
	}
	err = walk(ctx, from, f, func(e *cache.Entry) error {
		if !batched {
			return put(e)
		}
		batch = append(batch, e)
		batchBytes += len(e.Body)
		if len(batch) >= copyBatch || batchBytes >= copyBatchBytes {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return t.result(), fmt.Errorf("transfer: copy: %w", err)
	}
	return t.result(), nil
}
