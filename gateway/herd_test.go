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
	"github.com/cachegate/cachegate/gateway"
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

// The requests of a herd that arrive while the first one's upstream call
// runs wait for it (the lane hands them to ServeHTTP: Lookup never
// waits) and get the answer a request collapsed onto the call gets: one
// upstream call, the same MISS for all, the leader's Set-Cookie for the
// leader only.
func TestHerdThroughTheLaneCostsOneCall(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		<-release
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Set-Cookie", "session=leader")
		w.Write([]byte("answer"))
	})
	e := newEnv(t, policy(), upstream, nil)

	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	wg.Add(1)
	go func() { defer wg.Done(); results[0] = e.do(http.MethodGet, "/herd") }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond) // the leader's call is under way
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = e.do(http.MethodGet, "/herd") }()
	}
	// Every follower waits for the leader's call before the call may end;
	// counting requests as they enter is not enough, since one that has
	// not yet looked up would find the stored answer and HIT.
	for gateway.FollowersWaiting(e.gw) < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()

	if got := calls.Load(); got != 1 {
		t.Fatalf("%d upstream calls, want 1", got)
	}
	want := results[0]
	if want.status != http.StatusOK || want.body != "answer" || want.xcache() != "MISS" || want.header.Get("Set-Cookie") != "session=leader" {
		t.Fatalf("leader: %d %q X-Cache %q Set-Cookie %q", want.status, want.body, want.xcache(), want.header.Get("Set-Cookie"))
	}
	for i, r := range results[1:] {
		if r.status != want.status || r.body != want.body || r.xcache() != "MISS" {
			t.Errorf("follower %d: %d %q X-Cache %q", i, r.status, r.body, r.xcache())
		}
		if got := r.header.Get("Set-Cookie"); got != "" {
			t.Errorf("follower %d got the leader's Set-Cookie %q", i, got)
		}
		for _, k := range []string{"Cache-Status", "Content-Type", "Content-Length"} {
			if r.header.Get(k) != want.header.Get(k) {
				t.Errorf("follower %d: %s %q, leader's %q", i, k, r.header.Get(k), want.header.Get(k))
			}
		}
	}
	if got := e.gw.Stats().Snapshot().Upstreams["up"].Misses; got != n {
		t.Errorf("%d misses counted, want %d", got, n)
	}
	e.get("/herd", "HIT")
}

// A follower whose call's result cannot be shared (not stored) is left to
// net/http, which makes a call of its own, as it did before the lane.
func TestHerdFollowerOfAnUnsharedCallFetchesItself(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Write([]byte("private"))
	})
	e := newEnv(t, policy(func(p *cache.Policy) { p.CacheControl = true }), upstream, nil)
	var wg sync.WaitGroup
	results := make([]result, 2)
	wg.Add(1)
	go func() { defer wg.Done(); results[0] = e.do(http.MethodGet, "/ns") }()
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	wg.Add(1)
	go func() { defer wg.Done(); results[1] = e.do(http.MethodGet, "/ns") }()
	for gateway.FollowersWaiting(e.gw) == 0 {
		time.Sleep(time.Millisecond) // the second waits for the first's call
	}
	close(release)
	wg.Wait()
	if got := calls.Load(); got != 2 {
		t.Errorf("%d upstream calls, want 2 (nothing was stored to share)", got)
	}
	for i, r := range results {
		if r.status != http.StatusOK || r.body != "private" || r.xcache() != "MISS" {
			t.Errorf("request %d: %d %q X-Cache %q", i, r.status, r.body, r.xcache())
		}
	}
	if got := e.lane.Answered(); got != 0 {
		t.Errorf("lane answered %d requests, want none", got)
	}
}
