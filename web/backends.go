package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/dustin/go-humanize"
)

// OpenBackend opens the backend a DSN names. It is the one place that knows
// every concrete backend:
//
//	sqlite://PATH[?max_size=1GiB]   a SQLite file (default)
//	memory://[?max_size=256MiB]     in memory, bounded, lost on restart
//	file:///DIR                     one readable file per entry
//	mongodb://HOST/DB, mongodb+srv://...  MongoDB, shared by several gateways
func OpenBackend(ctx context.Context, dsn string) (cache.Backend, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil, fmt.Errorf("backend %q: want a DSN like sqlite://cachegate.db, memory://, file:///dir or mongodb://host/db", RedactDSN(dsn))
	}
	switch strings.ToLower(scheme) {
	case "sqlite":
		return sqlite.Open(dsn)
	case "memory":
		u, err := url.Parse(dsn)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", dsn, err)
		}
		var max uint64 = 256 << 20
		if v := u.Query().Get("max_size"); v != "" {
			if max, err = humanize.ParseBytes(v); err != nil {
				return nil, fmt.Errorf("backend %q: max_size: %w", dsn, err)
			}
		}
		return memory.New(int64(max)), nil
	default:
		return openOther(ctx, scheme, dsn)
	}
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
