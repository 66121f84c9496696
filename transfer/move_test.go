package transfer_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
	"github.com/cachegate/cachegate/transfer"
)

// refreshingDst is a destination that, as it stores the entry under key,
// has the source store that key anew: the gateway refreshing an entry
// in the middle of a move.
type refreshingDst struct {
	cache.Backend
	src cache.Backend
	key string
}

func (d *refreshingDst) Put(ctx context.Context, e *cache.Entry) error {
	if e.Key == d.key {
		fresh := cachetest.NewEntry(e.Key)
		fresh.URL, fresh.Created = e.URL, e.Created.Add(time.Second)
		if err := d.src.Put(ctx, fresh); err != nil {
			return err
		}
	}
	return d.Backend.Put(ctx, e)
}

func TestMoveRemovesOnlyWhatItCopied(t *testing.T) {
	for _, src := range backends {
		t.Run(src.name, func(t *testing.T) {
			ctx := context.Background()
			from := src.open(t)
			for i := range 250 { // over pageSize entries
				e := cachetest.NewEntry(fmt.Sprintf("k%03d", i))
				e.URL = fmt.Sprintf("https://demo.example/v%d/items/%d", i%2, i)
				mustPut(t, from, e)
			}
			to := &refreshingDst{Backend: openMemory(t), src: from, key: "k010"}
			res, err := transfer.Move(ctx, from, to, transfer.CopyOptions{Filter: cache.Filter{URL: "*/v0/*"}})
			if err != nil {
				t.Fatalf("Move: %v", err)
			}
			if res.Done != 125 || res.Moved != 124 || res.Kept != 1 || len(res.KeptKeys) != 1 || res.KeptKeys[0] != "k010" {
				t.Fatalf("result done %d moved %d kept %d %v; want 125, 124, 1 [k010]", res.Done, res.Moved, res.Kept, res.KeptKeys)
			}
			if c, _ := to.Count(ctx, cache.Filter{}); c.Entries != 125 {
				t.Errorf("destination holds %d, want 125", c.Entries)
			}
			// The source keeps the other half, and the refreshed k010.
			if c, _ := from.Count(ctx, cache.Filter{URL: "*/v0/*"}); c.Entries != 1 {
				t.Errorf("source holds %d of v0, want only the refreshed one", c.Entries)
			}
			if c, _ := from.Count(ctx, cache.Filter{URL: "*/v1/*"}); c.Entries != 125 {
				t.Errorf("source holds %d of v1, want all 125", c.Entries)
			}
			got, ok, err := from.Get(ctx, "k010")
			if err != nil || !ok {
				t.Fatalf("Get(k010) = %v, %v", ok, err)
			}
			if orig := cachetest.NewEntry("k010"); !got.Created.After(orig.Created) {
				t.Errorf("the source's k010 is not the refreshed version")
			}
		})
	}
}
