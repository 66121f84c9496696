package fs_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// mustOpen opens a backend on dir and closes it when the test ends.
func mustOpen(tb testing.TB, dir string) *fs.Backend {
	tb.Helper()
	b, err := fs.Open("file://" + dir)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	cachetest.Run(t, func(t *testing.T) cache.Backend {
		return mustOpen(t, t.TempDir())
	})
}

func TestParseDSN(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"file:///var/cache/cg", "/var/cache/cg"},
		{"file:///var/cache/cg/", "/var/cache/cg"},
		{"file://./data/cache", "data/cache"},
		{"file://data", "data"},
		{"file:///with%20space", "/with space"},
	} {
		got, err := fs.ParseDSN(c.dsn)
		if err != nil || got != c.want {
			t.Errorf("ParseDSN(%q) = %q, %v; want %q", c.dsn, got, err, c.want)
		}
	}
	for _, bad := range []string{"/plain/path", "file://", "sqlite://x.db"} {
		if _, err := fs.ParseDSN(bad); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("ParseDSN(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRelativeDSN(t *testing.T) {
	t.Chdir(t.TempDir())
	b, err := fs.Open("file://./rel/cache")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cachetest.MustPut(t, b, cachetest.NewEntry("k"))
	if _, err := os.Stat(filepath.Join("rel", "cache", "k", "k.json")); err != nil {
		t.Fatalf("metadata not under the relative directory: %v", err)
	}
}

// TestFilesAreReadable checks the layout a person browsing the directory
// relies on: indented JSON naming a body file that holds the body as is.
func TestFilesAreReadable(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir)
	e := cachetest.SetBody(cachetest.NewEntry("abcdef"), []byte(`{"hello":"world"}`))
	cachetest.MustPut(t, b, e)
	data, err := os.ReadFile(filepath.Join(dir, "ab", "abcdef.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\n  \"url\": \""+e.URL+"\"") {
		t.Fatalf("metadata is not indented JSON with the URL:\n%s", data)
	}
	var m struct {
		BodyFile string    `json:"body_file"`
		Created  time.Time `json:"created"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join(dir, "ab", m.BodyFile))
	if err != nil || string(body) != string(e.Body) {
		t.Fatalf("body file %q = %q, %v; want the body", m.BodyFile, body, err)
	}
	if !m.Created.Equal(e.Created) {
		t.Fatalf("created = %v, want %v", m.Created, e.Created)
	}
	// Replacing the entry leaves one body file, the new one.
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("abcdef"), []byte("v2")))
	bodies, _ := filepath.Glob(filepath.Join(dir, "ab", "*.body"))
	if len(bodies) != 1 {
		t.Fatalf("after replace, body files %v; want exactly one", bodies)
	}
	if ok, err := b.Delete(context.Background(), "abcdef"); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "ab", "*"))
	if len(left) != 0 {
		t.Fatalf("after delete, files left: %v", left)
	}
}

// TestSecondInstance is a second process (here a second Backend) reading
// the directory another one writes.
func TestSecondInstance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writer, reader := mustOpen(t, dir), mustOpen(t, dir)
	e := cachetest.NewEntry("shared")
	cachetest.MustPut(t, writer, e)
	if d := cachetest.Diff(cachetest.MustGet(t, reader, "shared"), e); d != "" {
		t.Fatalf("reader sees %s", d)
	}
	if err := writer.RecordHits(ctx, []cache.Hit{{Key: "shared", Count: 3, Last: cachetest.T0}}); err != nil {
		t.Fatal(err)
	}
	if got := cachetest.MustGet(t, reader, "shared"); got.Hits != 3 {
		t.Fatalf("reader sees %d hits, want 3", got.Hits)
	}
	if tot, err := reader.Count(ctx, cache.Filter{}); err != nil || tot.Entries != 1 {
		t.Fatalf("reader counts %+v, %v", tot, err)
	}
	if ok, err := writer.Delete(ctx, "shared"); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if _, ok, err := reader.Get(ctx, "shared"); ok || err != nil {
		t.Fatalf("reader still sees the deleted entry: %v, %v", ok, err)
	}
}

// TestConcurrentReaderInstance has one instance replace an entry over and
// over while another reads it: every read is whole.
func TestConcurrentReaderInstance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writer, reader := mustOpen(t, dir), mustOpen(t, dir)
	cachetest.MustPut(t, writer, cachetest.NewEntry("k"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			e := cachetest.SetBody(cachetest.NewEntry("k"), []byte(strings.Repeat(string(rune('a'+i%26)), i+1)))
			e.Header.Set("X-Len", strings.Repeat("x", i+1))
			if err := writer.Put(ctx, e); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for reads := 0; ; reads++ {
		select {
		case <-done:
			t.Logf("%d whole reads", reads)
			return
		default:
		}
		e := cachetest.MustGet(t, reader, "k")
		if n := len(e.Header.Get("X-Len")); n != 0 && n != len(e.Body) {
			t.Fatalf("torn read: header says %d bytes, body has %d", n, len(e.Body))
		}
	}
}

// TestCrashLeftovers simulates a writer that died mid-write: a temporary
// metadata file, a temporary body and a body no metadata names. None is
// ever served, and the next Open sweeps them once they are old enough.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, dir)
	cachetest.MustPut(t, b, cachetest.NewEntry("kept"))

	shard := filepath.Join(dir, "cr")
	if err := os.MkdirAll(shard, 0o755); err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"format": 1, "key": "crashed", "body_file": "crashed.0000.body", "size": 3})
	leftovers := map[string][]byte{
		".tmp-crashed.json-123":      meta,          // metadata never renamed
		".tmp-crashed.0000.body-456": []byte("abc"), // body never renamed
		"crashed.0000.body":          []byte("abc"), // body whose metadata never came
	}
	old := time.Now().Add(-time.Hour)
	for name, data := range leftovers {
		p := filepath.Join(shard, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh temporary file may belong to a write in progress.
	fresh := filepath.Join(shard, ".tmp-crashed.json-789")
	if err := os.WriteFile(fresh, meta, 0o644); err != nil {
		t.Fatal(err)
	}

	if _, ok, err := b.Get(ctx, "crashed"); ok || err != nil {
		t.Fatalf("Get(crashed) = %v, %v; want a miss", ok, err)
	}
	if tot, err := b.Count(ctx, cache.Filter{}); err != nil || tot.Entries != 1 {
		t.Fatalf("Count = %+v, %v; want only the kept entry", tot, err)
	}
	p, err := b.List(ctx, cache.Query{})
	if err != nil || len(p.Entries) != 1 || p.Entries[0].Key != "kept" {
		t.Fatalf("List = %v, %v; want only the kept entry", p.Entries, err)
	}

	b2 := mustOpen(t, dir) // Open sweeps
	for name := range leftovers {
		if _, err := os.Stat(filepath.Join(shard, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s not swept: %v", name, err)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temporary file was swept: %v", err)
	}
	cachetest.MustGet(t, b2, "kept")

	// DeleteExpired sweeps too.
	os.Chtimes(fresh, old, old)
	if _, err := b2.DeleteExpired(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old temporary file not swept by DeleteExpired: %v", err)
	}
}

func TestKeysCannotEscape(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b := mustOpen(t, filepath.Join(dir, "cache"))
	for _, key := range []string{"../escape", "..", "a/b", `a\b`, "", ".hidden"} {
		if err := b.Put(ctx, cachetest.NewEntry(key)); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Put(%q) err = %v, want ErrInvalid", key, err)
		}
		if _, _, err := b.Get(ctx, key); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Get(%q) err = %v, want ErrInvalid", key, err)
		}
		if _, err := b.Delete(ctx, key); !errors.Is(err, cache.ErrInvalid) {
			t.Errorf("Delete(%q) err = %v, want ErrInvalid", key, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files outside the cache directory: %v", entries)
	}
}

func BenchmarkGet(b *testing.B) {
	be := mustOpen(b, b.TempDir())
	cachetest.MustPut(b, be, cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, 1<<10)))
	ctx := context.Background()
	for b.Loop() {
		if _, ok, err := be.Get(ctx, "k"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	be := mustOpen(b, b.TempDir())
	e := cachetest.SetBody(cachetest.NewEntry("k"), make([]byte, 1<<10))
	ctx := context.Background()
	for b.Loop() {
		if err := be.Put(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenRemovesWhatAnEndedProcessLeft: the temporary files and
// unreferenced bodies of a Backend whose process ended (its lock file
// unlocked, or gone) are removed by the next Open at once, however fresh;
// those of a Backend still open (here in this process, through its own
// lock) and fresh files that name no owner stay for the age rule.
func TestOpenRemovesWhatAnEndedProcessLeft(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := mustOpen(t, dir)
	cachetest.MustPut(t, live, cachetest.NewEntry("crashed")) // its body is referenced: it stays
	owners, _ := filepath.Glob(filepath.Join(dir, ".owner-*"))
	if len(owners) != 1 {
		t.Fatalf("lock files of one open backend: %v, want one", owners)
	}
	liveOwner := strings.TrimPrefix(filepath.Base(owners[0]), ".owner-")

	const dead, vanished = "0123456789ab", "ba9876543210"
	if err := os.WriteFile(filepath.Join(dir, ".owner-"+dead), nil, 0o644); err != nil { // nobody holds its lock
		t.Fatal(err)
	}
	shard := filepath.Join(dir, "cr")
	files := map[string]bool{ // name: removed by the next Open
		".tmp." + dead + ".crashed.json-1":                       true,
		".tmp." + dead + ".crashed." + dead + "-00000000.body-2": true,
		"crashed." + dead + "-00000000.body":                     true,  // its metadata never came
		".tmp." + vanished + ".crashed.json-3":                   true,  // not even a lock file
		".tmp." + liveOwner + ".crashed.json-4":                  false, // a write in progress
		"crashed." + liveOwner + "-11111111.body":                false, // maybe its metadata comes next
		".tmp-crashed.json-5":                                    false, // no owner: too young
		"crashed.22222222.body":                                  false,
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(shard, name), []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	next := mustOpen(t, dir)
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(shard, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed %v, want %v (%v)", name, gone, removed, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".owner-"+dead)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the lock file of an ended process is still there: %v", err)
	}
	if _, err := os.Stat(owners[0]); err != nil {
		t.Errorf("the lock file of an open backend was removed: %v", err)
	}
	if e, ok, err := next.Get(ctx, "crashed"); !ok || err != nil || string(e.Body) != string(cachetest.NewEntry("crashed").Body) {
		t.Fatalf("the stored entry after the sweep: %v, %v", ok, err)
	}
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(owners[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left its lock file: %v", err)
	}
}

// A directory this process may only read (an export from a read-only
// copy) still opens and serves: no lock file is needed to read.
func TestOpenReadOnlyDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may write to any directory")
	}
	dir := t.TempDir()
	b := mustOpen(t, dir)
	cachetest.MustPut(t, b, cachetest.NewEntry("k"))
	b.Close()
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	ro := mustOpen(t, dir)
	cachetest.MustGet(t, ro, "k")
}
