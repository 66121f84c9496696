package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/cachegate/cachegate/backends/mongo/mongotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown() // a no-op unless a test started FerretDB
	os.Exit(code)
}

// TestMongoServerNamesTheServer asks the real server the tests run against
// (in-process FerretDB, or CACHEGATE_TEST_MONGODB_URI's) what it is.
func TestMongoServerNamesTheServer(t *testing.T) {
	got, err := mongoServer(context.Background(), mongotest.URI(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "FerretDB (version unknown, an embedded build) answering as MongoDB "
	if os.Getenv(mongotest.EnvURI) != "" {
		want = "" // a server of the developer's choosing: FerretDB or MongoDB
	}
	if !strings.HasPrefix(got, want) || !strings.Contains(got, " MongoDB ") {
		t.Fatalf("mongoServer = %q, want it to start %q and name a MongoDB version", got, want)
	}
	t.Log(got)
}

func TestDescribeMongoServer(t *testing.T) {
	if got := describeMongoServer(bson.M{"version": "8.0.4"}); got != "MongoDB 8.0.4" {
		t.Errorf("MongoDB: %q", got)
	}
	got := describeMongoServer(bson.M{"version": "7.0.77", "ferretdbVersion": "v1.24.0"})
	if !strings.HasPrefix(got, "FerretDB v1.24.0 answering as MongoDB 7.0.77.") || !strings.Contains(got, "full table scan") {
		t.Errorf("FerretDB: %q", got)
	}
}
