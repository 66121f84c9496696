package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// hitRecorder batches cache hits per backend so that answering from the
// cache never waits for a write; flush hands them to the backend.
type hitRecorder struct {
	backend cache.Backend
	log     *slog.Logger

	mu      sync.Mutex            // protects pending
	pending map[string]*cache.Hit // by key
}

func newHitRecorder(b cache.Backend, log *slog.Logger) *hitRecorder {
	return &hitRecorder{backend: b, log: log, pending: make(map[string]*cache.Hit)}
}

func (h *hitRecorder) record(key string, at time.Time) {
	h.mu.Lock()
	if p, ok := h.pending[key]; ok {
		p.Count++
		p.Last = at
	} else {
		h.pending[key] = &cache.Hit{Key: key, Count: 1, Last: at}
	}
	h.mu.Unlock()
}

func (h *hitRecorder) flush(ctx context.Context) {
	h.mu.Lock()
	if len(h.pending) == 0 {
		h.mu.Unlock()
		return
	}
	batch := make([]cache.Hit, 0, len(h.pending))
	for _, p := range h.pending {
		batch = append(batch, *p)
	}
	h.pending = make(map[string]*cache.Hit, len(batch))
	h.mu.Unlock()
	if err := h.backend.RecordHits(ctx, batch); err != nil {
		// Hit counts are statistics: losing one batch is better than
		// piling them up while a backend is down.
		h.log.Warn("record hits", "entries", len(batch), "err", err)
	}
}
