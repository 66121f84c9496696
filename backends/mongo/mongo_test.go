package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/cachegate/cachegate/backends/mongo"
	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Shutdown()
	os.Exit(code)
}

// mustOpen opens a backend on uri plus extra DSN options and closes it
// when the test ends.
func mustOpen(tb testing.TB, uri, opts string) *mongo.Backend {
	tb.Helper()
	if opts != "" {
		sep := "?"
		if strings.Contains(uri, "?") {
			sep = "&"
		}
		uri += sep + opts
	}
	b, err := mongo.Open(context.Background(), uri)
	if err != nil {
		tb.Fatalf("Open(%s): %v", uri, err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	for _, c := range []struct {
		name, opts string
	}{
		{"inline", ""},
		// Bodies over 20 bytes in GridFS: most of the fixture and the
		// concurrent writers' bodies go through GridFS, the thousand
		// one-byte entries of ListLimit stay inline (and fast).
		{"gridfs", "gridfs_threshold=20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cachetest.Run(t, func(t *testing.T) cache.Backend {
				return mustOpen(t, mongotest.URI(t), c.opts)
			})
		})
	}
}

func TestParseDSN(t *testing.T) {
	cases := []struct {
		name, dsn string
		want      mongo.Config
	}{
		{"defaults", "mongodb://localhost", mongo.Config{URI: "mongodb://localhost/", Database: "cachegate", Collection: "entries", GridFSThreshold: 8 << 20}},
		{"database", "mongodb://localhost:27017/mydb", mongo.Config{URI: "mongodb://localhost:27017/mydb", Database: "mydb", Collection: "entries", GridFSThreshold: 8 << 20}},
		{"our options are stripped, the driver's kept in order",
			"mongodb://u:p%40ss@h1:1,h2:2/db?replicaSet=rs&collection=c&w=majority&gridfs_threshold=100",
			mongo.Config{URI: "mongodb://u:p%40ss@h1:1,h2:2/db?replicaSet=rs&w=majority", Database: "db", Collection: "c", GridFSThreshold: 100}},
		{"srv with only our options", "mongodb+srv://cluster.example.net/?collection=x",
			mongo.Config{URI: "mongodb+srv://cluster.example.net/", Database: "cachegate", Collection: "x", GridFSThreshold: 8 << 20}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := mongo.ParseDSN(c.dsn)
			if err != nil {
				t.Fatalf("ParseDSN(%q): %v", c.dsn, err)
			}
			if got != c.want {
				t.Fatalf("ParseDSN(%q) = %+v, want %+v", c.dsn, got, c.want)
			}
		})
	}
	for _, bad := range []string{
		"sqlite://x.db",
		"localhost:27017",
		"mongodb://h/db?gridfs_threshold=lots",
		"mongodb://h/db?gridfs_threshold=99999999999",
		"mongodb://h/a.b",
		"mongodb://h/db?collection=$x",
	} {
		if _, err := mongo.ParseDSN(bad); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("ParseDSN(%q) err = %v, want one wrapping cache.ErrInvalid", bad, err)
		}
	}
}

// gridFiles counts the GridFS files of the backend's default collection.
func gridFiles(tb testing.TB, uri string) int64 {
	tb.Helper()
	c, err := mongodrv.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Disconnect(context.Background())
	cfg, _ := mongo.ParseDSN(uri)
	n, err := c.Database(cfg.Database).Collection("entries_bodies.files").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestGridFSFilesFollowEntries(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.URI(t)
	b := mustOpen(t, uri, "gridfs_threshold=100")
	big := func(key string, fill byte) *cache.Entry {
		return cachetest.SetBody(cachetest.NewEntry(key), bytes.Repeat([]byte{fill}, 300_000))
	}
	steps := []struct {
		name  string
		do    func() error
		files int64
	}{
		{"put big", func() error { return b.Put(ctx, big("a", 'a')) }, 1},
		{"replace big with big", func() error { return b.Put(ctx, big("a", 'b')) }, 1},
		{"replace big with small", func() error { return b.Put(ctx, cachetest.NewEntry("a")) }, 0},
		{"put two big", func() error {
			if err := b.Put(ctx, big("a", 'c')); err != nil {
				return err
			}
			return b.Put(ctx, big("b", 'd'))
		}, 2},
		{"delete one", func() error { _, err := b.Delete(ctx, "a"); return err }, 1},
		{"delete matching", func() error { _, err := b.DeleteMatching(ctx, cache.Filter{Keys: []string{"b"}}); return err }, 0},
		{"put then clear", func() error {
			if err := b.Put(ctx, big("c", 'e')); err != nil {
				return err
			}
			return b.Clear(ctx)
		}, 0},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := gridFiles(t, uri); got != s.files {
			t.Fatalf("after %s: %d GridFS files, want %d", s.name, got, s.files)
		}
	}
}

// TestTwoInstances is two gateways sharing one database: what one writes
// the other reads, what one deletes is gone for the other.
func TestTwoInstances(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.URI(t)
	one, two := mustOpen(t, uri, "gridfs_threshold=10"), mustOpen(t, uri, "gridfs_threshold=10")
	e := cachetest.NewEntry("shared")
	cachetest.MustPut(t, one, e)
	if d := cachetest.Diff(cachetest.MustGet(t, two, "shared"), e); d != "" {
		t.Fatalf("second instance reads %s", d)
	}
	if err := two.RecordHits(ctx, []cache.Hit{{Key: "shared", Count: 2, Last: cachetest.T0}}); err != nil {
		t.Fatal(err)
	}
	if got := cachetest.MustGet(t, one, "shared"); got.Hits != 2 {
		t.Fatalf("first instance sees %d hits, want 2", got.Hits)
	}
	if ok, err := two.Delete(ctx, "shared"); !ok || err != nil {
		t.Fatalf("Delete through the second = %v, %v", ok, err)
	}
	if _, ok, err := one.Get(ctx, "shared"); ok || err != nil {
		t.Fatalf("first instance still sees the entry: %v, %v", ok, err)
	}
}

func TestInvalidKey(t *testing.T) {
	ctx := context.Background()
	b := mustOpen(t, mongotest.URI(t), "")
	for _, key := range []string{"", "../x", `{"$gt":""}`, "a b"} {
		if _, _, err := b.Get(ctx, key); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Get(%q) err = %v, want ErrInvalid", key, err)
		}
		if err := b.Put(ctx, cachetest.NewEntry(key)); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Put(%q) err = %v, want ErrInvalid", key, err)
		}
		if _, err := b.Delete(ctx, key); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Delete(%q) err = %v, want ErrInvalid", key, err)
		}
	}
}

// TestConnectionLoss stops the server under a backend: operations fail
// with errors, quickly, and work again once the server is back.
func TestConnectionLoss(t *testing.T) {
	ctx := context.Background()
	srv := mongotest.NewServer(t)
	b := mustOpen(t, srv.URI()+"loss", "serverSelectionTimeoutMS=500&gridfs_threshold=100")
	cachetest.MustPut(t, b, cachetest.NewEntry("k"), cachetest.SetBody(cachetest.NewEntry("big"), make([]byte, 1000)))

	srv.Stop()
	start := time.Now()
	if _, _, err := b.Get(ctx, "k"); err == nil {
		t.Fatal("Get with the server down: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Get with the server down took %v; want about the 500ms selection timeout", d)
	}
	if err := b.Put(ctx, cachetest.NewEntry("k2")); err == nil {
		t.Error("Put with the server down: no error")
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("Ping with the server down: no error")
	}
	if _, err := b.List(ctx, cache.Query{}); err == nil {
		t.Error("List with the server down: no error")
	}
	if _, err := b.Count(ctx, cache.Filter{}); err == nil {
		t.Error("Count with the server down: no error")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := b.Ping(ctx)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend did not recover after the server came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cachetest.MustGet(t, b, "k")
	if got := cachetest.MustGet(t, b, "big"); len(got.Body) != 1000 {
		t.Fatalf("GridFS body after reconnect: %d bytes", len(got.Body))
	}
	cachetest.MustPut(t, b, cachetest.NewEntry("k3"))
}

func TestOpenUnreachable(t *testing.T) {
	// Port 1 on localhost refuses connections.
	start := time.Now()
	_, err := mongo.Open(context.Background(), "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=300")
	if err == nil {
		t.Fatal("Open of an unreachable server: no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
}

func BenchmarkGet(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			be := mustOpen(b, mongotest.URI(b), "")
			cachetest.MustPut(b, be, cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, size)))
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if _, ok, err := be.Get(ctx, "k"); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

func BenchmarkPut(b *testing.B) {
	be := mustOpen(b, mongotest.URI(b), "")
	e := cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, 1<<10))
	ctx := context.Background()
	for b.Loop() {
		if err := be.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPutMany(t *testing.T) {
	ctx := context.Background()
	uri := mongotest.URI(t)
	b := mustOpen(t, uri, "gridfs_threshold=100")
	// One entry with a GridFS body, to be replaced by a small one.
	if err := b.Put(ctx, cachetest.SetBody(cachetest.NewEntry("k0"), bytes.Repeat([]byte{'x'}, 500))); err != nil {
		t.Fatal(err)
	}
	var batch []*cache.Entry
	for i := range 30 {
		body := []byte(fmt.Sprintf("body %d", i))
		if i == 7 {
			body = bytes.Repeat([]byte{'y'}, 1000) // goes to GridFS through Put
		}
		batch = append(batch, cachetest.SetBody(cachetest.NewEntry(fmt.Sprintf("k%d", i)), body))
	}
	replaced := cachetest.SetBody(cachetest.NewEntry("k3"), []byte("the later one wins"))
	batch = append(batch, replaced)
	if err := b.PutMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i, want := range batch[:30] {
		if i == 3 {
			want = replaced
		}
		if d := cachetest.Diff(cachetest.MustGet(t, b, want.Key), want); d != "" {
			t.Fatalf("%s: %s", want.Key, d)
		}
	}
	if got := gridFiles(t, uri); got != 1 {
		t.Fatalf("%d GridFS files, want 1 (k7's; k0's old one deleted)", got)
	}
	if err := b.PutMany(ctx, []*cache.Entry{cachetest.NewEntry("bad key!")}); !errors.Is(err, cache.ErrInvalid) {
		t.Fatalf("bad key: %v", err)
	}
}
