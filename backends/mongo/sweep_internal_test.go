package mongo

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// TestSweepOrphans simulates a Put that crashed after writing its GridFS
// body but before its document: the file is never served, and the sweep
// removes it while keeping the files entries still name.
func TestSweepOrphans(t *testing.T) {
	ctx := context.Background()
	b, err := Open(ctx, mongotest.URI(t)+"?gridfs_threshold=10")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	body := bytes.Repeat([]byte("x"), 100)
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("live"), body))
	orphan := bson.NewObjectID()
	if err := b.upload(ctx, orphan, "crashed", body); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.Get(ctx, "crashed"); ok || err != nil {
		t.Fatalf("Get(crashed) = %v, %v; want a miss", ok, err)
	}
	files := func() int64 {
		n, err := b.bucket().GetFilesCollection().CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Too young to sweep: it may belong to a Put in progress.
	if err := b.sweepOrphans(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := files(); n != 2 {
		t.Fatalf("young orphan swept: %d files left, want 2", n)
	}
	if err := b.sweepOrphans(ctx, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := files(); n != 1 {
		t.Fatalf("after sweep %d files, want 1 (the live entry's)", n)
	}
	if got := cachetest.MustGet(t, b, "live"); !bytes.Equal(got.Body, body) {
		t.Fatalf("live entry's body lost by the sweep")
	}
}
