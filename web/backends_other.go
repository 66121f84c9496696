package web

import (
	"context"
	"fmt"

	"github.com/cachegate/cachegate/cache"
)

// openOther opens the backends that arrive with the MongoDB and filesystem
// work.
func openOther(ctx context.Context, scheme, dsn string) (cache.Backend, error) {
	return nil, fmt.Errorf("backend %q: unknown scheme %q (accepted: sqlite, memory, file, mongodb)", RedactDSN(dsn), scheme)
}
