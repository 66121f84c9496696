package transfer

import (
	"context"
	"fmt"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// MoveResult is what Move did: Done counts the entries copied, Moved
// those of them also removed from the source.
type MoveResult struct {
	Result
	Moved int64 `json:"moved"`
	// Kept counts entries copied but left in the source because the
	// source stored them anew during the move; KeptKeys lists the first
	// MaxErrors of them.
	Kept     int64    `json:"kept"`
	KeptKeys []string `json:"kept_keys,omitempty"`
}

// Move copies every entry of from that matches opts.Filter into to, as
// Copy does, and removes each one it stored from from, but only the
// version it copied: the delete matches the entry's key and response
// time (Created, new on every store), in one DeleteMatching that each
// backend applies atomically. An entry the gateway refreshed in the
// meantime stays in the source (counted in Kept); one that failed to copy
// stays too. It returns an error when a backend fails, the context ends,
// or a Put fails under OnError Stop; the result counts what was done
// until then.
func Move(ctx context.Context, from, to cache.Backend, opts CopyOptions) (MoveResult, error) {
	t := newTracker(opts.Progress)
	var res MoveResult
	f := pin(opts.Filter)
	totals, err := from.Count(ctx, f)
	if err != nil {
		res.Result = t.result()
		return res, fmt.Errorf("transfer: move: count: %w", err)
	}
	t.res.Total, t.res.TotalBytes = totals.Entries, totals.Bytes
	t.progress()
	err = walk(ctx, from, f, func(e *cache.Entry) error {
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
		same := cache.Filter{Keys: []string{e.Key}, CreatedAfter: e.Created, CreatedBefore: e.Created.Add(time.Nanosecond)}
		n, err := from.DeleteMatching(ctx, same)
		if err != nil {
			return fmt.Errorf("remove %q from the source (it is copied): %w", e.Key, err)
		}
		if n > 0 {
			res.Moved++
		} else {
			res.Kept++
			if len(res.KeptKeys) < MaxErrors {
				res.KeptKeys = append(res.KeptKeys, e.Key)
			}
		}
		t.done(int64(len(e.Body)))
		return nil
	})
	res.Result = t.result()
	if err != nil {
		return res, fmt.Errorf("transfer: move: %w", err)
	}
	return res, nil
}
