package web

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/dustin/go-humanize"
)

// OpenBackend opens the backend a DSN names, for the command line's export
// and import: a hot tier, if any, writes every store through. It is the
// one place that knows every concrete backend:
//
//	sqlite://PATH[?max_size=1GiB]   a SQLite file (default)
//	memory://[?max_size=256MiB]     in memory, bounded, lost on restart
//	file:///DIR                     one readable file per entry
//	mongodb://HOST/DB, mongodb+srv://...  MongoDB, shared by several gateways
func OpenBackend(ctx context.Context, dsn string) (cache.Backend, error) {
	o, err := openBackend(ctx, dsn, nil)
	return o.backend, err
}

// openedBackend is a backend as the server runs it.
type openedBackend struct {
	backend cache.Backend
	// held is the memory it holds by design at most: its hot tier with
	// the write-behind queue, or an in-memory backend's cap.
	held int64
}

// openBackend opens the backend a DSN names. With storeFailed set, its hot
// tier writes behind within the DSN's write_behind_window (a miss answers
// without waiting for the disk) and reports there the stores that fail;
// with nil it writes every store through.
func openBackend(ctx context.Context, dsn string, storeFailed func(key string, err error)) (openedBackend, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return openedBackend{}, fmt.Errorf("backend %q: want a DSN like sqlite://cachegate.db, memory://, file:///dir or mongodb://host/db", RedactDSN(dsn))
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		rest, tier, err := hotTier(dsn, defaultHotSize)
		if err != nil {
			return openedBackend{}, err
		}
		b, err := sqlite.Open(rest)
		if err != nil {
			return openedBackend{}, err
		}
		return tier.wrap(b, storeFailed), nil
	case "memory":
		u, err := url.Parse(dsn)
		if err != nil {
			return openedBackend{}, fmt.Errorf("backend %q: %w", dsn, err)
		}
		var max uint64 = 256 << 20
		if v := u.Query().Get("max_size"); v != "" {
			if max, err = humanize.ParseBytes(v); err != nil {
				return openedBackend{}, fmt.Errorf("backend %q: max_size: %w", dsn, err)
			}
		}
		return openedBackend{backend: memory.New(int64(max)), held: int64(max)}, nil
	default:
		return openOther(ctx, scheme, dsn, storeFailed)
	}
}

// tierConfig is the in-memory hot tier in front of a persistent backend,
// set by the DSN parameters hot_size (bytes of bodies, default 64MiB, 0
// turns it off) and hot_ttl (how long a hot copy is trusted before the
// backend is read again, default 5s: writes by other processes show within
// it). Each hot key is checked again once per TTL (on SQLite by its stamp,
// cache.Stamper, and read again only if it changed): with 1s, reading a
// thousand hot keys on a million-entry SQLite file every time cost a tenth
// of the CPU of serving their hits.
//
// Hot bodies of fileBodyMin bytes and more are also kept in unnamed files
// and sent with sendfile (tiered.FileBodies): in the directory of the SQLite
// file or of the file backend, which is on a disk (a tmpfs /tmp would hold
// them in memory a second time, and sendfile gains nothing from it), else
// in the system's temporary directory, unless the DSN parameter hot_files
// names another; hot_files=off keeps them in memory only.
type tierConfig struct {
	size     int64
	ttl      time.Duration
	window   time.Duration // write_behind_window: how long after a miss was answered its entry may be only in memory (0: written through)
	filesDir string        // "" keeps large bodies in memory only
	filesSet bool          // filesDir came from the DSN
}

// fileBodyMin is the body size from which sendfile costs less than
// copying the body into the socket.
const fileBodyMin = 32 << 10

// wrap puts the tier in front of b, writing behind when storeFailed is
// set (see openBackend).
func (t tierConfig) wrap(b cache.Backend, storeFailed func(key string, err error)) openedBackend {
	if t.size <= 0 {
		return openedBackend{backend: b}
	}
	h := tiered.New(b, t.size, t.ttl)
	dir := t.filesDir
	if !t.filesSet {
		switch b := b.(type) {
		case interface{ Path() string }: // sqlite
			dir = filepath.Dir(b.Path())
		case interface{ Dir() string }: // fs
			dir = b.Dir()
		}
	}
	if dir != "" {
		h.FileBodies(dir, fileBodyMin)
	}
	if storeFailed != nil {
		h.WriteBehind(tiered.WriteBehindOptions{Window: t.window, OnError: storeFailed})
	}
	return openedBackend{backend: h.Served(), held: h.MemoryCap()}
}

// defaultHotSize is the hot tier of a local backend unless its DSN says.
const defaultHotSize = 64 << 20

// defaultHotTTL is how long a hot copy is trusted unless the DSN says.
const defaultHotTTL = 5 * time.Second

// hotTier takes the hot-tier parameters out of a DSN; defaultSize applies
// when the DSN sets no hot_size.
func hotTier(dsn string, defaultSize int64) (string, tierConfig, error) {
	t := tierConfig{size: defaultSize, ttl: defaultHotTTL, window: tiered.DefaultWindow, filesDir: os.TempDir()}
	base, rawQuery, ok := strings.Cut(dsn, "?")
	if !ok {
		return dsn, t, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", t, fmt.Errorf("backend %q: bad query: %w", RedactDSN(dsn), err)
	}
	if v := q.Get("hot_size"); v != "" {
		n, err := humanize.ParseBytes(v)
		if err != nil {
			return "", t, fmt.Errorf("backend %q: hot_size: want a size like 64MiB or 0 to turn the hot tier off", RedactDSN(dsn))
		}
		t.size = int64(n)
	}
	if v := q.Get("hot_ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return "", t, fmt.Errorf("backend %q: hot_ttl: want a duration like 1s", RedactDSN(dsn))
		}
		t.ttl = d
	}
	if v := q.Get("write_behind_window"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return "", t, fmt.Errorf("backend %q: write_behind_window: want a duration like 200ms, or 0 to write every miss through", RedactDSN(dsn))
		}
		t.window = d
	}
	if v := q.Get("hot_files"); v != "" {
		t.filesSet = true
		if v == "off" {
			t.filesDir = ""
		} else if fi, err := os.Stat(v); err != nil || !fi.IsDir() {
			return "", t, fmt.Errorf("backend %q: hot_files: want a directory for the files of large hot bodies, or off", RedactDSN(dsn))
		} else {
			t.filesDir = v
		}
	}
	q.Del("hot_size")
	q.Del("hot_ttl")
	q.Del("hot_files")
	q.Del("write_behind_window")
	if len(q) == 0 {
		return base, t, nil
	}
	return base + "?" + q.Encode(), t, nil
}

// RedactDSN hides the password of a DSN for logs and the admin side.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "REDACTED")
	}
	return u.String()
}
