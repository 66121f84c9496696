package web

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// Large hot bodies are kept in unnamed files beside the SQLite file or
// in the file backend's directory (on disk, not in a tmpfs /tmp), or
// where hot_files says, or nowhere.
func TestHotBodyFilesLiveBesideTheCache(t *testing.T) {
	db, dir, other := t.TempDir(), t.TempDir(), t.TempDir()
	for _, c := range []struct{ dsn, wantDir string }{
		{"sqlite://" + filepath.Join(db, "c.db"), db},
		{"file://" + dir, dir},
		{"sqlite://" + filepath.Join(t.TempDir(), "c.db") + "?hot_files=" + other, other},
		{"sqlite://" + filepath.Join(t.TempDir(), "c.db") + "?hot_files=off", ""},
	} {
		b, err := OpenBackend(context.Background(), c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		cachetest.MustPut(t, b, cachetest.SetBody(cachetest.NewEntry("k"), bytes.Repeat([]byte("x"), 64<<10)))
		_, f, ok := b.(cache.BodyFilePeeker).PeekMemoryFile("k")
		switch {
		case !ok:
			t.Errorf("%s: the entry is not in memory", c.dsn)
		case c.wantDir == "" && f != nil:
			t.Errorf("%s: a body file with hot_files=off", c.dsn)
		case c.wantDir != "":
			if f == nil {
				t.Errorf("%s: no body file", c.dsn)
				break
			}
			// An unnamed file shows as "<dir>/#<inode> (deleted)".
			link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.(*os.File).Fd()))
			if err != nil || !strings.HasPrefix(link, c.wantDir+"/") {
				t.Errorf("%s: body file %q, want one in %s (%v)", c.dsn, link, c.wantDir, err)
			}
		}
		b.Close()
	}
}
