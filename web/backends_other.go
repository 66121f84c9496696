package web

import (
	"context"
	"fmt"
	"strings"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/backends/mongo"
)

// openOther opens the filesystem and MongoDB backends.
//
// A directory gets the hot tier like SQLite. MongoDB does not by default:
// several gateways share it, and a delete through one must be gone for the
// others at once; hot_size=64MiB turns it on where a second of staleness
// (hot_ttl) is acceptable.
func openOther(ctx context.Context, scheme, dsn string, storeFailed func(key string, err error)) (openedBackend, error) {
	switch strings.ToLower(scheme) {
	case "file":
		rest, tier, err := hotTier(dsn, defaultHotSize)
		if err != nil {
			return openedBackend{}, err
		}
		b, err := fs.Open(rest)
		if err != nil {
			return openedBackend{}, err
		}
		return tier.wrap(b, storeFailed), nil
	case "mongodb", "mongodb+srv":
		rest, tier, err := hotTier(dsn, 0)
		if err != nil {
			return openedBackend{}, err
		}
		b, err := mongo.Open(ctx, rest)
		if err != nil {
			return openedBackend{}, err
		}
		return tier.wrap(b, storeFailed), nil
	}
	return openedBackend{}, fmt.Errorf("backend %q: unknown scheme %q (accepted: sqlite, memory, file, mongodb, mongodb+srv)", RedactDSN(dsn), scheme)
}
