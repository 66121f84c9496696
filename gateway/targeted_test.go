package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// A targeted cache-control field (RFC 9213) governs caching for the
// gateway in place of Cache-Control and Expires, which clients still get.
func TestTargetedCacheControlTakesPrecedence(t *testing.T) {
	rcWithHeaders := func(p *cache.Policy) { p.CacheControl = true }
	cases := []struct {
		name    string
		mode    func(*cache.Policy)
		targets []string
		header  map[string]string
		// after is how long after the miss the second request comes; want
		// its X-Cache.
		after time.Duration
		want  string
	}{
		{"rfc9111: CDN-Cache-Control stores what Cache-Control forbids", rfc, nil,
			map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=60"}, 30 * time.Second, "HIT"},
		{"rfc9111: its lifetime wins over Cache-Control's", rfc, nil,
			map[string]string{"Cache-Control": "max-age=600", "CDN-Cache-Control": "max-age=5"}, 10 * time.Second, "MISS"},
		{"rfc9111: it replaces Expires", rfc, nil,
			map[string]string{"Expires": "Thu, 01 Jan 2099 00:00:00 GMT", "CDN-Cache-Control": "max-age=5"}, 10 * time.Second, "MISS"},
		{"rfc9111: its no-store wins", rfc, nil,
			map[string]string{"Cache-Control": "max-age=600", "CDN-Cache-Control": "no-store"}, time.Second, "MISS"},
		{"requests-cache with cache_control: its max-age wins", rcWithHeaders, nil,
			map[string]string{"Cache-Control": "max-age=5", "CDN-Cache-Control": "max-age=600"}, 60 * time.Second, "HIT"},
		{"a configured field comes first", rfc, []string{"Cachegate-Cache-Control", "CDN-Cache-Control"},
			map[string]string{"Cachegate-Cache-Control": "max-age=600", "CDN-Cache-Control": "max-age=5"}, 60 * time.Second, "HIT"},
		{"an empty list turns them off", rfc, []string{},
			map[string]string{"Cache-Control": "max-age=5", "CDN-Cache-Control": "max-age=600"}, 60 * time.Second, "MISS"},
		{"requests-cache without cache_control reads only Cache-Control's no-store", nil, nil,
			map[string]string{"Cache-Control": "no-store", "CDN-Cache-Control": "max-age=600"}, time.Second, "MISS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := &flaky{body: "v1", header: c.header}
			e := newEnv(t, policy(func(p *cache.Policy) {
				if c.mode != nil {
					c.mode(p)
				}
				p.TargetedCacheControl = c.targets
			}), up, nil)
			first := e.get("/t", "MISS")
			for name, v := range c.header {
				if got := first.header.Get(name); got != v {
					t.Errorf("the client got %s %q, want the upstream's %q", name, got, v)
				}
			}
			e.clock.Advance(c.after)
			if got := e.do("GET", "/t"); got.xcache() != c.want && !(c.want == "MISS" && got.xcache() == "REVALIDATED") {
				t.Errorf("after %v: X-Cache %s (%s), want %s", c.after, got.xcache(), got.header.Get("Cache-Status"), c.want)
			}
		})
	}
}

// The expiry reason names the field that set it, for Explain and the
// overview's rules.
func TestTargetedCacheControlNamedInTheReason(t *testing.T) {
	up := &flaky{body: "v1", header: map[string]string{"CDN-Cache-Control": "max-age=60"}}
	e := newEnv(t, policy(rfc), up, nil)
	r := e.get("/t", "MISS")
	if cs := r.header.Get("Cache-Status"); !strings.Contains(cs, "stored") {
		t.Fatalf("not stored: %s", cs)
	}
	entries := e.entries()
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Reason, "CDN-Cache-Control: max-age") {
		t.Fatalf("reason %q, want it to name CDN-Cache-Control", entries[0].Reason)
	}
}

// An absolute expiry (requests-cache's datetime) in a pattern keeps
// entries fresh until that time, whenever they were fetched.
func TestAbsoluteExpiryInAPattern(t *testing.T) {
	// The test's clock starts at the real time: two hours from now.
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.URLsExpireAfter = []cache.URLRule{{Pattern: "/until/*", Expire: cache.ExpireAt(at)}}
	}), &flaky{body: "v1"}, nil)
	e.get("/until/a", "MISS")
	e.clock.Advance(time.Hour)
	e.get("/until/b", "MISS")
	for _, en := range e.entries() {
		if !en.Expires.Equal(at) || !strings.Contains(en.Reason, "says expire at") {
			t.Errorf("%s expires %v (%s), want %v", en.URL, en.Expires, en.Reason, at)
		}
	}
	e.clock.Advance(59 * time.Minute)
	e.get("/until/a", "HIT")
	e.clock.Advance(2 * time.Minute)
	if r := e.do("GET", "/until/a"); r.xcache() == "HIT" {
		t.Fatal("served fresh after the absolute expiry")
	}
}

// entry_headers sends what requests-cache's CachedResponse tells: the key,
// created_at and expires, on hits (both doors) and on a stored miss, and
// nothing when off or when the miss was not stored.
func TestEntryHeaders(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) {
		p.EntryHeaders = true
		p.URLsExpireAfter = []cache.URLRule{{Pattern: "/forever*", Expire: cache.NeverExpire}, {Pattern: "/nostore*", Expire: cache.DoNotCache}}
	}), &flaky{body: "v1"}, nil)
	miss := e.get("/x", "MISS")
	hit := e.get("/x", "HIT")
	entries := e.entries()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	en := entries[0]
	for _, r := range []struct {
		name string
		h    http.Header
	}{{"miss", miss.header}, {"hit", hit.header}} {
		if got := r.h.Get(gateway.EntryKeyHeader); got != en.Key {
			t.Errorf("%s: key %q, want %q", r.name, got, en.Key)
		}
		if got := r.h.Get(gateway.EntryCreatedHeader); got != en.Created.UTC().Format(time.RFC3339) {
			t.Errorf("%s: created %q, want %v", r.name, got, en.Created)
		}
		if got := r.h.Get(gateway.EntryExpiresHeader); got != en.Expires.UTC().Format(time.RFC3339) {
			t.Errorf("%s: expires %q, want %v", r.name, got, en.Expires)
		}
	}
	e.get("/forever", "MISS")
	if got := e.get("/forever", "HIT").header.Get(gateway.EntryExpiresHeader); got != "never" {
		t.Errorf("a never-expiring entry: expires %q", got)
	}
	if got := e.get("/nostore", "MISS").header.Get(gateway.EntryKeyHeader); got != "" {
		t.Errorf("a miss not stored names a key %q", got)
	}
	off := newEnv(t, policy(), &flaky{body: "v1"}, nil)
	off.get("/x", "MISS")
	if got := off.get("/x", "HIT").header.Get(gateway.EntryKeyHeader); got != "" {
		t.Errorf("entry_headers off: key %q", got)
	}
}
