package gateway

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// backendUnavailable is the Cache-Status detail of a request that did not
// read or write the cache because its backend failed.
const backendUnavailable = "backend-unavailable"

// backendHealth is whether a backend failed recently. While it is down,
// requests neither read nor write it: they go to the upstream at once,
// instead of each waiting out the backend's own timeout (a MongoDB that
// is gone takes seconds to say so), and Cache-Status says why. A probe
// in the background lets them back once the backend answers.
type backendHealth struct {
	down atomic.Bool
}

// healthOf returns the health of backend b, the same for every upstream
// on it.
func (g *Gateway) healthOf(b cache.Backend) *backendHealth {
	v, _ := g.health.LoadOrStore(b, &backendHealth{})
	return v.(*backendHealth)
}

// backendFailed marks up's backend down after err, and starts the probe
// that marks it up again.
func (g *Gateway) backendFailed(up *upstream, err error) {
	h := up.health
	if !h.down.CompareAndSwap(false, true) {
		return
	}
	g.log.Warn("backend unavailable: requests go to the upstream uncached until it answers again", "backend", up.BackendName, "err", err)
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		// The first ping is at once: an error of one entry's (too large
		// for the backend, say) leaves a backend that answers, and
		// requests should skip it no longer than that ping takes.
		t := time.NewTicker(g.probeEvery)
		defer t.Stop()
		for !g.answers(up.Backend) {
			select {
			case <-g.stop:
				return
			case <-t.C:
			}
		}
		h.down.Store(false)
		g.log.Info("backend available again", "backend", up.BackendName)
	}()
}

// answers reports whether b answers a ping within two seconds. A backend
// that cannot be pinged is given the next request to try.
func (g *Gateway) answers(b cache.Backend) bool {
	p, ok := b.(cache.Pinger)
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return p.Ping(ctx) == nil
}
