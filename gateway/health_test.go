package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// failingBackend is a real backend that fails every call while broken,
// as a MongoDB that has gone away does (after its own timeout).
type failingBackend struct {
	cache.Backend
	broken     atomic.Bool
	gets, puts atomic.Int64
}

var errGone = errors.New("server selection error: the backend is gone")

func (b *failingBackend) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	b.gets.Add(1)
	if b.broken.Load() {
		return nil, false, errGone
	}
	return b.Backend.Get(ctx, key)
}

func (b *failingBackend) Put(ctx context.Context, e *cache.Entry) error {
	b.puts.Add(1)
	if b.broken.Load() {
		return errGone
	}
	return b.Backend.Put(ctx, e)
}

func (b *failingBackend) Ping(ctx context.Context) error {
	if b.broken.Load() {
		return errGone
	}
	return nil
}

// While its backend is down, an upstream's requests go to the upstream
// without waiting on the backend again, Cache-Status says why, and once
// the backend answers a ping they are cached again.
func TestBackendDownIsSkippedUntilItAnswers(t *testing.T) {
	b := &failingBackend{Backend: memory.New(0)}
	b.broken.Store(true)
	e := newEnvOpts(t, gateway.Options{BackendProbeInterval: 5 * time.Millisecond}, policy(), nil, b)

	r := e.get("/get?a=1", "MISS")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "detail=backend-unavailable") || strings.Contains(cs, "stored") {
		t.Fatalf("Cache-Status %q, want detail=backend-unavailable", cs)
	}
	gets, puts := b.gets.Load(), b.puts.Load()
	if gets != 1 || puts != 0 {
		t.Fatalf("first request: %d lookups, %d stores; want 1 and none (the backend had just failed)", gets, puts)
	}
	for range 3 {
		r := e.get("/get?a=2", "MISS")
		if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "detail=backend-unavailable") {
			t.Fatalf("Cache-Status %q while the backend is down", cs)
		}
	}
	if b.gets.Load() != gets || b.puts.Load() != puts {
		t.Fatalf("requests waited on a backend known to be down: %d lookups, %d stores", b.gets.Load()-gets, b.puts.Load()-puts)
	}

	b.broken.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.do(http.MethodGet, "/get?a=3")
		if strings.Contains(r.header.Get("Cache-Status"), "stored") || r.xcache() == "HIT" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend answers again, but requests still skip it: %q", r.header.Get("Cache-Status"))
		}
		time.Sleep(time.Millisecond)
	}
	e.get("/get?a=3", "HIT")
}
