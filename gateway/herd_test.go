package gateway_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
)

// slowSecondGet is a real backend whose second Get answers late (after
// reading): a lookup that began before a store and ends after it.
type slowSecondGet struct {
	cache.Backend
	calls atomic.Int64
	delay time.Duration
}

func (b *slowSecondGet) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	e, ok, err := b.Backend.Get(ctx, key)
	if b.calls.Add(1) == 2 {
		time.Sleep(b.delay)
	}
	return e, ok, err
}

// A request that found nothing before the first call stored its answer,
// and reaches the flight group only after that call ended, was concurrent
// with it: it must take the stored answer, not call the upstream again.
func TestLateRequestOfAHerdDoesNotCallAgain(t *testing.T) {
	var calls atomic.Int64
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("answer"))
	})
	backend := &slowSecondGet{Backend: memory.New(0), delay: 150 * time.Millisecond}
	e := newEnv(t, policy(), upstream, backend)

	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.do(http.MethodGet, "/herd")
		}()
		time.Sleep(10 * time.Millisecond) // the first looks up first
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d upstream calls, want 1", n)
	}
	for i, r := range results {
		if r.status != http.StatusOK || r.body != "answer" || r.xcache() != "MISS" {
			t.Errorf("request %d: %d %q X-Cache %q", i, r.status, r.body, r.xcache())
		}
	}
	// A request after the call ended looks again and finds the entry.
	e.get("/herd", "HIT")
}
