package tiered

import (
	"context"

	"github.com/cachegate/cachegate/cache"
)

// A *Backend implements only the optional interfaces it answers itself
// (cache.Peeker, cache.MemoryPeeker, cache.BodyFilePeeker). The ones it
// passes on to the cold backend, cache.Sizer, cache.Vacuumer and
// cache.Pinger, are on the value Served returns, and only when the cold
// backend implements them: callers detect them by type assertion, so a
// tier that claimed Vacuum in front of a directory would be believed and
// vacuum nothing.

// Served returns b as a cache.Backend that also implements those of
// cache.Sizer, cache.Vacuumer and cache.Pinger the cold backend
// implements, and no others. Configure b (FileBodies, WriteBehind) before
// handing the result out; the result and b are the same tier.
func (b *Backend) Served() cache.Backend {
	s, sizes := b.cold.(cache.Sizer)
	v, vacuums := b.cold.(cache.Vacuumer)
	p, pings := b.cold.(cache.Pinger)
	vc := vacuumer{b, v}
	switch {
	case sizes && vacuums && pings:
		return struct {
			*Backend
			cache.Sizer
			vacuumer
			cache.Pinger
		}{b, s, vc, p}
	case sizes && vacuums:
		return struct {
			*Backend
			cache.Sizer
			vacuumer
		}{b, s, vc}
	case sizes && pings:
		return struct {
			*Backend
			cache.Sizer
			cache.Pinger
		}{b, s, p}
	case vacuums && pings:
		return struct {
			*Backend
			vacuumer
			cache.Pinger
		}{b, vc, p}
	case sizes:
		return struct {
			*Backend
			cache.Sizer
		}{b, s}
	case vacuums:
		return struct {
			*Backend
			vacuumer
		}{b, vc}
	case pings:
		return struct {
			*Backend
			cache.Pinger
		}{b, p}
	}
	return b
}

// Unwrap returns the cold backend, so that the conformance suite can
// check the capabilities a tier claims against it.
func (b *Backend) Unwrap() cache.Backend { return b.cold }

// vacuumer stores what waits to be written behind before vacuuming, so
// that the space it frees is counted once.
type vacuumer struct {
	b    *Backend
	cold cache.Vacuumer
}

func (v vacuumer) Vacuum(ctx context.Context) error {
	v.b.Flush(ctx)
	return v.cold.Vacuum(ctx)
}
