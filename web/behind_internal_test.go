package web

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

func TestWriteBehindWindowParam(t *testing.T) {
	for _, c := range []struct {
		name, dsn, rest string
		want            time.Duration
		wantErr         bool
	}{
		{name: "default", dsn: "sqlite://c.db", rest: "sqlite://c.db", want: tiered.DefaultWindow},
		{name: "set", dsn: "sqlite://c.db?write_behind_window=50ms&max_size=1GiB", rest: "sqlite://c.db?max_size=1GiB", want: 50 * time.Millisecond},
		{name: "write through", dsn: "file:///tmp/c?write_behind_window=0", rest: "file:///tmp/c", want: 0},
		{name: "negative", dsn: "sqlite://c.db?write_behind_window=-1s", wantErr: true},
		{name: "not a duration", dsn: "sqlite://c.db?write_behind_window=soon", wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rest, _, err := hotTier(c.dsn, defaultHotSize)
			got, werr := writeBehindWindow(c.dsn)
			if c.wantErr {
				if err == nil || werr == nil || !strings.Contains(err.Error(), "write_behind_window") {
					t.Fatalf("hotTier(%q): %v, %v; want an error naming write_behind_window", c.dsn, err, werr)
				}
				return
			}
			if err != nil || werr != nil || rest != c.rest || got != c.want {
				t.Fatalf("hotTier(%q) = %q, window %v (%v, %v); want %q, %v", c.dsn, rest, got, err, werr, c.rest, c.want)
			}
		})
	}
}

// With write_behind_window=0 the server's backend has stored an entry
// when Put returns: another handle on the file reads it at once.
func TestWriteBehindWindowZeroStoresBeforePutReturns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s := &Server{cfg: Config{Backend: "sqlite://" + path + "?write_behind_window=0"}, backends: map[string]cache.Backend{}, dsns: map[string]string{}}
	if err := s.openBackends(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.closeBackends()
	cachetest.MustPut(t, s.backends[DefaultBackendName], cachetest.NewEntry("k"))
	other, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cachetest.MustGet(t, other, "k")
}
