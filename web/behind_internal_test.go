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
			rest, tier, err := hotTier(c.dsn, defaultHotSize)
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "write_behind_window") {
					t.Fatalf("hotTier(%q): %v; want an error naming write_behind_window", c.dsn, err)
				}
				return
			}
			if err != nil || rest != c.rest || tier.window != c.want {
				t.Fatalf("hotTier(%q) = %q, window %v (%v); want %q, %v", c.dsn, rest, tier.window, err, c.rest, c.want)
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
	cachetest.MustPut(t, s.backends[cache.DefaultBackendName], cachetest.NewEntry("k"))
	other, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	cachetest.MustGet(t, other, "k")
}
