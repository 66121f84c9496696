package mongotest_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
)

// FerretDB on a throwaway PostgreSQL stores and finds a document, and
// finds it by _id through the primary key's index.
func TestFerretDBOnPostgres(t *testing.T) {
	if os.Getenv(mongotest.EnvPostgres) != "1" {
		t.Skip("set " + mongotest.EnvPostgres + "=1 to run FerretDB on PostgreSQL")
	}
	bin, ok := mongotest.PostgresBin()
	if !ok {
		t.Fatal("no PostgreSQL (initdb) found")
	}
	dir, err := os.MkdirTemp("", "cachegate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pg, err := mongotest.StartPostgres(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	s, err := mongotest.StartServerOnPostgres(pg.URL(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(s.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("cachegate").Collection("entries")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "k"}, {Key: "v", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "k"}}).Decode(&got); err != nil || got["v"] != int32(1) {
		t.Fatalf("FindOne = %v, %v", got, err)
	}
	// Enough rows that PostgreSQL's planner prefers an index to reading
	// the table.
	var docs []any
	for i := range 5000 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("key-%05d", i)}, {Key: "v", Value: i}})
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	plan, err := mongotest.IDLookupPlan(ctx, coll, "key-00042")
	if err != nil {
		t.Fatal(err)
	}
	// FerretDB's own _id index does not serve its containment test.
	if !strings.Contains(plan, `"Seq Scan"`) {
		t.Logf("without the GIN index FerretDB no longer scans: %s", plan)
	}
	if err := pg.IndexIDLookups(ctx, "cachegate"); err != nil {
		t.Fatal(err)
	}
	plan, err = mongotest.IDLookupPlan(ctx, coll, "key-00042")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan, "Index Scan") || strings.Contains(plan, `"Seq Scan"`) {
		t.Fatalf("an _id lookup does not use the index: %s", plan)
	}
	var again bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "key-00042"}}).Decode(&again); err != nil || again["v"] != int32(42) {
		t.Fatalf("FindOne through the index = %v, %v", again, err)
	}
}
