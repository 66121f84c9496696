package gateway_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// upstreamOf is the env's upstream "up" with policy p, as Reload takes it.
func (e *env) upstreamOf(name string, p cache.Policy) gateway.Upstream {
	u, err := url.Parse(e.upstream.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	return gateway.Upstream{Name: name, URL: u, Policy: p, Backend: e.backend, BackendName: "default", Timeout: 2 * time.Second}
}

// expiresIn finds the stored entry whose URL contains part and returns
// how long after now it expires.
func (e *env) expiresIn(part string) time.Duration {
	e.t.Helper()
	for _, en := range e.entries() {
		if strings.Contains(en.URL, part) {
			return en.Expires.Sub(e.clock.Now())
		}
	}
	e.t.Fatalf("no entry with %q stored", part)
	return 0
}

func near(got, want time.Duration) bool { return got > want-time.Second && got < want+time.Second }

func TestReloadSwapsRules(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	e.get("/get?a", "MISS")
	e.get("/get?z=1&tok=a", "MISS")
	if got := e.expiresIn("?a"); !near(got, time.Hour) {
		t.Fatalf("before the reload: expires in %v, want 1h", got)
	}
	loaded := e.gw.ConfigStatus().LoadedAt
	e.clock.Advance(time.Minute)

	ch, err := e.gw.Reload(e.upstreamOf("up", policy(func(p *cache.Policy) {
		p.ExpireAfter = cache.Expiry(10 * time.Minute)
		p.IgnoredParameters = []string{"tok"}
	})))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Changed, []string{"up"}) || len(ch.Added)+len(ch.Removed) != 0 {
		t.Fatalf("changes = %+v, want up changed", ch)
	}
	st := e.gw.ConfigStatus()
	if st.Reloads != 1 || !st.LoadedAt.After(loaded) || st.LastError != "" {
		t.Fatalf("status = %+v, want one reload after %v", st, loaded)
	}
	if got := e.gw.Upstreams()[0].Policy.ExpireAfter; got != cache.Expiry(10*time.Minute) {
		t.Fatalf("upstreams list expire_after %v, want 10m", got)
	}

	// Entries stored under the old rules stay; new ones get the new rules.
	e.get("/get?a", "HIT")
	e.get("/get?b", "MISS")
	if got := e.expiresIn("?b"); !near(got, 10*time.Minute) {
		t.Fatalf("after the reload: expires in %v, want 10m", got)
	}
	// The key of this very request target was memoized under the old
	// rules, with tok in it; under the new ones tok is ignored, so the old
	// entry is not this request's.
	e.get("/get?z=1&tok=a", "MISS")
	e.get("/get?z=1&tok=b", "HIT")
}

func TestReloadKeepsBypassAndCounters(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	e.get("/get?a", "MISS")
	if err := e.gw.SetBypass("up", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.gw.Reload(e.upstreamOf("up", policy(func(p *cache.Policy) { p.ExpireAfter = cache.Expiry(time.Minute) }))); err != nil {
		t.Fatal(err)
	}
	if !e.gw.Upstreams()[0].Bypassed {
		t.Fatal("bypass switch lost by the reload")
	}
	e.get("/get?a", "BYPASS")
	if n := e.gw.Stats().Snapshot().Upstreams["up"].Requests; n != 2 {
		t.Fatalf("requests counted = %d, want 2 across the reload", n)
	}
}

func TestReloadAddsAndRemovesUpstreams(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	e.get("/get?a", "MISS")
	ch, err := e.gw.Reload(e.upstreamOf("up", policy()), e.upstreamOf("two", policy()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Added, []string{"two"}) || len(ch.Changed)+len(ch.Removed) != 0 {
		t.Fatalf("changes = %+v, want two added, up unchanged", ch)
	}
	resp, err := http.Get(e.srv.URL + "/fetch/two/get")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("added upstream: %d %q, want 200 MISS", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	// The background ticker may take samples too: count over them all.
	e.gw.Stats().Tick(e.clock.Now())
	var two, total int64
	for _, s := range e.gw.Stats().History() {
		two += s.Upstreams["two"].Requests
		total += s.Total.Requests
	}
	if two != 1 || total != 2 {
		t.Fatalf("history counts %d requests of two and %d in all, want 1 and 2", two, total)
	}

	ch, err = e.gw.Reload(e.upstreamOf("two", policy()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Removed, []string{"up"}) {
		t.Fatalf("changes = %+v, want up removed", ch)
	}
	if r := e.do(http.MethodGet, "/get?a"); r.status != http.StatusNotFound {
		t.Fatalf("removed upstream answered %d, want 404", r.status)
	}
}

func TestReloadRefusesAnInvalidSet(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	_, err := e.gw.Reload(e.upstreamOf("up", policy(func(p *cache.Policy) {
		p.ExpireAfter = cache.Expiry(time.Minute)
	})), e.upstreamOf("bad", policy(func(p *cache.Policy) { p.AllowableCodes = []int{999} })))
	if err == nil || !strings.Contains(err.Error(), `upstream "bad": allowable_codes`) {
		t.Fatalf("err = %v, want one naming upstream bad's allowable_codes", err)
	}
	if ups := e.gw.Upstreams(); len(ups) != 1 || ups[0].Policy.ExpireAfter != cache.Expiry(time.Hour) {
		t.Fatalf("upstreams after a refused reload = %+v, want the old up alone", ups)
	}
	st := e.gw.ConfigStatus()
	if st.Reloads != 0 || st.ReloadErrors != 1 || !strings.Contains(st.LastError, "allowable_codes") {
		t.Fatalf("status = %+v, want the error recorded", st)
	}
	e.get("/get?a", "MISS")
	if got := e.expiresIn("?a"); !near(got, time.Hour) {
		t.Fatalf("expires in %v, want the old rule's 1h", got)
	}
}

// A request that started before a reload finishes under the rules it
// started with, and is not cut.
func TestReloadDuringARequest(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		w.Write([]byte("slow"))
	})
	e := newEnv(t, policy(), slow, nil)
	done := make(chan result)
	go func() { done <- e.do(http.MethodGet, "/slow") }()
	<-entered
	if _, err := e.gw.Reload(e.upstreamOf("up", policy(func(p *cache.Policy) { p.ExpireAfter = cache.Expiry(time.Minute) }))); err != nil {
		t.Fatal(err)
	}
	close(release)
	r := <-done
	if r.status != http.StatusOK || r.body != "slow" {
		t.Fatalf("in-flight request: %d %q, want 200 slow", r.status, r.body)
	}
	if got := e.expiresIn("/slow"); !near(got, time.Hour) {
		t.Fatalf("expires in %v, want the rules it started under (1h)", got)
	}
}

// Reloads while requests run: for the race detector.
func TestReloadUnderTraffic(t *testing.T) {
	e := newEnv(t, policy(), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if r := e.do(http.MethodGet, "/get?n="+string(rune('a'+i%8))); r.status != http.StatusOK {
					t.Errorf("status %d during reloads", r.status)
					return
				}
			}
		}()
	}
	for i := range 20 {
		p := policy(func(p *cache.Policy) { p.ExpireAfter = cache.Expiry(time.Duration(i+1) * time.Minute) })
		if _, err := e.gw.Reload(e.upstreamOf("up", p), e.upstreamOf("two", policy())); err != nil {
			t.Fatal(err)
		}
		if err := e.gw.SetBypass("two", i%2 == 0); err != nil {
			t.Fatal(err)
		}
		e.gw.Upstreams()
		e.gw.Stats().Tick(e.clock.Now())
	}
	cancel()
	wg.Wait()
	if n := e.gw.ConfigStatus().Reloads; n != 20 {
		t.Fatalf("reloads = %d, want 20", n)
	}
}
