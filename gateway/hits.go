package gateway

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// hitRecorder batches cache hits per backend so that answering from the
// cache never waits for a write; flush hands them to the backend.
//
// Every hit records, so the pending counts are split into shards, and a
// hit picks one at random: with one lock, concurrent hits queued on it (a
// third of the lock waits of a fast-lane hit, measured), and each wait
// parks a goroutine. Sharding by key would not do: a popular URL's hits
// would all meet on one shard. flush adds the shards' counts up.
type hitRecorder struct {
	backend cache.Backend
	log     *slog.Logger
	shards  [hitShards]hitShard
}

const hitShards = 16

type hitShard struct {
	mu      sync.Mutex            // protects pending
	pending map[string]*cache.Hit // by key
	_       [64 - 16]byte         // a cache line each: no false sharing
}

func newHitRecorder(b cache.Backend, log *slog.Logger) *hitRecorder {
	h := &hitRecorder{backend: b, log: log}
	for i := range h.shards {
		h.shards[i].pending = make(map[string]*cache.Hit)
	}
	return h
}

func (h *hitRecorder) record(key string, at time.Time) {
	s := &h.shards[rand.Uint32()%hitShards]
	s.mu.Lock()
	if p, ok := s.pending[key]; ok {
		p.Count++
		if at.After(p.Last) {
			p.Last = at
		}
	} else {
		s.pending[key] = &cache.Hit{Key: key, Count: 1, Last: at}
	}
	s.mu.Unlock()
}

func (h *hitRecorder) flush(ctx context.Context) {
	var merged map[string]*cache.Hit
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		pending := s.pending
		if len(pending) == 0 {
			// Still the shard's map: not to be read outside the lock.
			s.mu.Unlock()
			continue
		}
		s.pending = make(map[string]*cache.Hit, len(pending))
		s.mu.Unlock()
		if merged == nil {
			merged = pending
			continue
		}
		for k, p := range pending {
			m, ok := merged[k]
			if !ok {
				merged[k] = p
				continue
			}
			m.Count += p.Count
			if p.Last.After(m.Last) {
				m.Last = p.Last
			}
		}
	}
	batch := make([]cache.Hit, 0, len(merged))
	for _, p := range merged {
		batch = append(batch, *p)
	}
	if len(batch) == 0 {
		return
	}
	if err := h.backend.RecordHits(ctx, batch); err != nil {
		// Hit counts are statistics: losing one batch is better than
		// piling them up while a backend is down.
		h.log.Warn("record hits", "entries", len(batch), "err", err)
	}
}
