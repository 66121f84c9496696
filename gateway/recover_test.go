package gateway_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
)

// panicking is a memory backend whose reads panic while armed: a bug
// below the gateway, reached through both doors.
type panicking struct {
	*memory.Backend
	armed atomic.Bool
}

func (p *panicking) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if p.armed.Load() {
		panic("panicking backend: Get")
	}
	return p.Backend.Get(ctx, key)
}

func (p *panicking) Peek(ctx context.Context, key string) (*cache.Entry, bool, error) {
	if p.armed.Load() {
		panic("panicking backend: Peek")
	}
	return p.Backend.Peek(ctx, key)
}

func (p *panicking) PeekMemory(key string) (*cache.Entry, bool) {
	if p.armed.Load() {
		panic("panicking backend: PeekMemory")
	}
	return p.Backend.PeekMemory(key)
}

// TestPanicAnswersJSONThroughBothDoors: a panic while answering /fetch/
// is the gateway's to recover, whichever door the request came through:
// the lane's Lookup declines (rather than the panic killing the
// connection or the process), ServeHTTP answers a JSON 500, and the entry
// is untouched once the fault is gone.
func TestPanicAnswersJSONThroughBothDoors(t *testing.T) {
	b := &panicking{Backend: memory.New(0)}
	e := newEnv(t, policy(), nil, b)
	e.get("/get?a=1", "MISS")
	e.get("/get?a=1", "HIT")
	lane := e.lane.Answered()

	b.armed.Store(true)
	r := e.do(http.MethodGet, "/get?a=1")
	if r.status != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500 (body %q)", r.status, r.body)
	}
	var body struct{ Error, Code string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || body.Code != "internal" || body.Error == "" {
		t.Fatalf("body %q (%v), want a JSON error with code internal", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if r.header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id on the 500")
	}
	if n := e.lane.Answered(); n != lane {
		t.Errorf("the lane answered %d requests while Lookup panicked, want none", n-lane)
	}

	// Lookup itself recovers: the lane's own guard is not what saves it.
	req, _ := http.NewRequest(http.MethodGet, "/fetch/up/get?a=1", nil)
	req.RequestURI = "/fetch/up/get?a=1"
	if _, ok := e.gw.Lookup(req); ok {
		t.Error("Lookup answered while the backend panicked")
	}

	b.armed.Store(false)
	if _, ok := e.gw.Lookup(req); !ok {
		t.Error("Lookup declines the stored entry after the fault")
	}
	if got := e.get("/get?a=1", "HIT"); got.status != http.StatusOK {
		t.Errorf("after the fault: status %d, want the stored 200", got.status)
	}
}
