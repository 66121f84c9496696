package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// A hit of an entry whose fetch took 120 ms saves 120 ms: the clock the
// gateway reads moves 120 ms while the upstream answers.
func TestHitSavesTheEntrysFetchTime(t *testing.T) {
	var e *env
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.clock.Advance(120 * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("slow answer"))
	})
	e = newEnv(t, policy(), slow, nil)
	e.get("/slow", "MISS")
	if v := e.gw.Stats().Snapshot().Total; v.SavedNanos != 0 || v.TimeSavedMs != 0 {
		t.Fatalf("a miss saved %v ms", v.TimeSavedMs)
	}
	e.get("/slow", "HIT")
	if got := e.gw.Stats().Snapshot().Upstreams["up"].TimeSavedMs; got != 120 {
		t.Fatalf("one hit saved %v ms, want 120", got)
	}
	e.get("/slow", "HIT")
	v := e.gw.Stats().Snapshot().Total
	if v.TimeSavedMs != 240 || v.Hits != 2 {
		t.Fatalf("two hits saved %v ms (%d hits), want 240", v.TimeSavedMs, v.Hits)
	}
	if v.BytesFromCache != 2*int64(len("slow answer")) {
		t.Fatalf("bytes from cache %d", v.BytesFromCache)
	}
}

// The per-rule counts say which rule stored the entries that were hit.
func TestRuleCountsStoresAndHits(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.URLsExpireAfter = []cache.URLRule{{Pattern: "/anything/*", Expire: cache.NeverExpire}}
	}), nil, nil)
	e.get("/anything/a", "MISS")
	e.get("/anything/a", "HIT")
	e.get("/anything/a", "HIT")
	e.get("/get?x=1", "MISS")
	rules := e.gw.Stats().Rules("up")
	want := []gateway.RuleStats{
		{Rule: `urls_expire_after pattern "/anything/*"`, Stored: 1, Hits: 2},
		{Rule: "expire_after", Stored: 1, Hits: 0},
	}
	if len(rules) != len(want) {
		t.Fatalf("rules %+v, want %+v", rules, want)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Fatalf("rule %d = %+v, want %+v", i, rules[i], want[i])
		}
	}
}

func TestRuleOf(t *testing.T) {
	for reason, want := range map[string]string{
		`urls_expire_after pattern "/api/*" gives 1h0m0s`:                             `urls_expire_after pattern "/api/*"`,
		"the upstream's Cache-Control: max-age=60 gives 1m0s":                         "Cache-Control: max-age",
		"the upstream's Expires header gives Thu, 03 Dec 2026 14:00:00 GMT":           "Expires header",
		"expire_after says never expire":                                              "expire_after",
		"Cache-Control: s-maxage gives a freshness lifetime of 1m0s, less an initial": "Cache-Control: s-maxage",
		"the request's X-Cachegate-Expire-After header gives 5s":                      "X-Cachegate-Expire-After header",
		"": "other",
	} {
		if got := gateway.RuleOf(reason); got != want {
			t.Errorf("RuleOf(%q) = %q, want %q", reason, got, want)
		}
	}
}
