package cachetest

import (
	"context"
	"testing"

	"github.com/cachegate/cachegate/cache"
)

// Wrapper is implemented by a backend that wraps another (backends/tiered
// in front of a persistent backend), so that the suite can hold the
// capabilities it claims against the backend it wraps.
type Wrapper interface {
	Unwrap() cache.Backend
}

// passedThrough are the optional interfaces a wrapper has exactly when the
// backend it wraps has them: it can only answer them by asking that
// backend, and a caller that finds one believes it (a Vacuum that does
// nothing, a MaxBytes of 0 for a capped backend).
var passedThrough = []struct {
	name string
	has  func(cache.Backend) bool
}{
	{"cache.Sizer", func(b cache.Backend) bool { _, ok := b.(cache.Sizer); return ok }},
	{"cache.Vacuumer", func(b cache.Backend) bool { _, ok := b.(cache.Vacuumer); return ok }},
	{"cache.Pinger", func(b cache.Backend) bool { _, ok := b.(cache.Pinger); return ok }},
	{"cache.Stamper", func(b cache.Backend) bool { _, ok := b.(cache.Stamper); return ok }},
	{"cache.BatchPutter", func(b cache.Backend) bool { _, ok := b.(cache.BatchPutter); return ok }},
	{"cache.EvictionCounter", func(b cache.Backend) bool { _, ok := b.(cache.EvictionCounter); return ok }},
	{"cache.PurgeCounter", func(b cache.Backend) bool { _, ok := b.(cache.PurgeCounter); return ok }},
}

// mayDrop are the passed-through interfaces a wrapper need not offer:
// Stamper and BatchPutter make the backend cheaper to use, and a wrapper
// that serves reads and batches writes itself has no use for passing
// them on; the counters are read down the chain of Unwrap.
var mayDrop = map[string]bool{"cache.Stamper": true, "cache.BatchPutter": true, "cache.EvictionCounter": true, "cache.PurgeCounter": true}

// testCapabilities checks that the optional interfaces a backend claims
// work, and that a wrapper claims those of the backend it wraps, no more
// and (but for mayDrop) no fewer, at every depth.
func testCapabilities(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	MustPut(t, b, NewEntry("k"))
	if v, ok := b.(cache.Vacuumer); ok {
		if err := v.Vacuum(ctx); err != nil {
			t.Errorf("Vacuum: %v", err)
		}
	}
	if p, ok := b.(cache.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
	}
	if s, ok := b.(cache.Sizer); ok && s.MaxBytes() < 0 {
		t.Errorf("MaxBytes = %d, want 0 (no cap) or more", s.MaxBytes())
	}
	MustGet(t, b, "k")
	for outer := b; ; {
		w, ok := outer.(Wrapper)
		if !ok {
			return
		}
		inner := w.Unwrap()
		for _, c := range passedThrough {
			claims, has := c.has(outer), c.has(inner)
			if claims && !has {
				t.Errorf("%T claims %s, which the %T it wraps lacks", outer, c.name, inner)
			}
			if has && !claims && !mayDrop[c.name] {
				t.Errorf("%T hides the %s of the %T it wraps", outer, c.name, inner)
			}
		}
		outer = inner
	}
}
