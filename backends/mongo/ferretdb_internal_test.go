package mongo

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// TestBulkWritesToFerretDBAreSplit records more hits in one call than a
// FerretDB command may carry: all are counted, through commands small
// enough that FerretDB on PostgreSQL cannot run out of connections.
func TestBulkWritesToFerretDBAreSplit(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if os.Getenv(mongotest.EnvURI) == "" && b.writesPerCommand != ferretDBWritesPerCommand {
		t.Fatalf("on FerretDB writesPerCommand = %d, want %d", b.writesPerCommand, ferretDBWritesPerCommand)
	}
	const n = 5*ferretDBWritesPerCommand + 3
	var entries []*cache.Entry
	var hits []cache.Hit
	for i := range n {
		e := cachetest.NewEntry(fmt.Sprintf("k%d", i))
		entries = append(entries, e)
		hits = append(hits, cache.Hit{Key: e.Key, Count: 2, Last: time.Now()})
	}
	if err := b.PutMany(ctx, entries); err != nil {
		t.Fatal(err)
	}
	if err := b.RecordHits(ctx, hits); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if got := cachetest.MustGet(t, b, e.Key); got.Hits != 2 {
			t.Fatalf("%s: %d hits, want 2", e.Key, got.Hits)
		}
	}
}
