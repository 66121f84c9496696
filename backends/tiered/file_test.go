package tiered

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// Large bodies get a file holding exactly the body; reading an entry again
// keeps its file; an entry leaving the tier closes it.
func TestFileBodies(t *testing.T) {
	b := New(memory.New(0), 1<<20, time.Second).FileBodies(t.TempDir(), 32<<10)
	now := time.Unix(1_700_000_000, 0)
	b.now = func() time.Time { return now }
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("big"), big))
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("small"), []byte("small")))

	if _, f, ok := b.PeekMemoryFile("small"); !ok || f != nil {
		t.Fatalf("small body: ok %v, file %v; want no file", ok, f)
	}
	e, f, ok := b.PeekMemoryFile("big")
	if !ok || f == nil {
		t.Fatalf("big body: ok %v, file %v; want a file", ok, f)
	}
	got := make([]byte, len(big)+1)
	if n, _ := f.ReadAt(got, 0); n != len(big) || !bytes.Equal(got[:n], big) || !bytes.Equal(e.Body, big) {
		t.Fatalf("the file holds %d bytes, not the body", n)
	}

	// Past the TTL the entry is read again from the persistent backend:
	// the same body keeps the same file.
	now = now.Add(2 * time.Second)
	if _, _, ok := b.PeekMemoryFile("big"); ok {
		t.Fatal("a copy past the TTL was served from memory")
	}
	if _, ok, err := b.Peek(t.Context(), "big"); !ok || err != nil {
		t.Fatalf("Peek: %v %v", ok, err)
	}
	_, f2, _ := b.PeekMemoryFile("big")
	if f2 != f {
		t.Fatal("reading the same body again made a new file")
	}

	// A new body gets a new file; the old one is closed.
	changed := bytes.Repeat([]byte("x"), 40<<10)
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("big"), changed))
	_, f3, _ := b.PeekMemoryFile("big")
	if f3 == nil || f3 == f {
		t.Fatal("a changed body kept the old file")
	}
	if _, err := f.(*os.File).Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the replaced file is not closed: %v", err)
	}

	// Deleted, and the tier closed: every file is closed.
	if _, err := b.Delete(t.Context(), "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := f3.(*os.File).Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the deleted entry's file is not closed: %v", err)
	}
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("again"), big))
	_, f4, _ := b.PeekMemoryFile("again")
	b.Close()
	if f4 == nil {
		t.Fatal("no file")
	}
	if _, err := f4.(*os.File).Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Close left a file open: %v", err)
	}
}

// Without unnamed files in the directory, bodies stay in memory.
func TestFileBodiesFallBackToMemory(t *testing.T) {
	b := New(memory.New(0), 1<<20, 0).FileBodies("/nonexistent-dir", 1)
	defer b.Close()
	cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), []byte("body")))
	if e, f, ok := b.PeekMemoryFile("k"); !ok || f != nil || string(e.Body) != "body" {
		t.Fatalf("got %v %v %v", e, f, ok)
	}
}

// The files never take more than maxBodyFiles descriptors; closing the
// tier gives them all back.
func TestFileBodiesAreBounded(t *testing.T) {
	b := New(memory.New(0), 1<<30, 0).FileBodies(t.TempDir(), 1)
	for i := range maxBodyFiles + 5 {
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry(fmt.Sprint("k", i)), []byte("body")))
	}
	if got := b.files.Load(); got != maxBodyFiles {
		t.Fatalf("%d files open, want the cap %d", got, maxBodyFiles)
	}
	if _, f, _ := b.PeekMemoryFile(fmt.Sprint("k", maxBodyFiles+4)); f != nil {
		t.Error("a body past the cap got a file")
	}
	if _, err := b.Delete(t.Context(), "k0"); err != nil {
		t.Fatal(err)
	}
	if got := b.files.Load(); got != maxBodyFiles-1 {
		t.Errorf("%d files open after a delete, want %d", got, maxBodyFiles-1)
	}
	b.Close()
	if got := b.files.Load(); got != 0 {
		t.Errorf("%d files open after Close", got)
	}
}
