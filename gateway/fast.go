package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// ServeHit answers r only when it is a plain cache hit: a GET or HEAD
// below /fetch/ for a fresh entry that the upstream's backend holds in
// memory (cache.MemoryPeeker), from a request without directives,
// conditionals, ranges or gateway headers that could make the answer
// anything but the stored response. Its answer, counters and events are
// exactly those ServeHTTP gives such a request.
//
// A request whose entry is not in memory while another request fetches
// it after a cache miss waits for that call and is answered from its
// result, as ServeHTTP answers the requests collapsed onto such a call
// (X-Cache MISS, one upstream call for them all). A herd of first
// requests is then answered without net/http and without reading the
// backend once per request.
//
// When it returns false it has written nothing and counted nothing; the
// caller then hands r to ServeHTTP. It is the entry point of a connection
// front end that answers hits without net/http's per-request machinery
// (web/fastlane), so it never starts I/O of its own: a miss with no call
// under way, or an entry only on disk, is a false.
func (g *Gateway) ServeHit(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if hasDirectives(r.Header) || hasPreconditions(r) {
		return false
	}
	start := time.Now()
	name, rest, ok := splitFetchPath(r.URL.EscapedPath())
	if !ok {
		return false
	}
	up, err := g.upstream(name)
	if err != nil || !up.Policy.AllowsMethod(http.MethodGet) || up.bypassed.Load() {
		return false
	}
	target, tmpl, memo, err := up.resolve(r, rest)
	if err != nil {
		return false
	}
	// A memoized key is used in place: a hit allocates no key.
	var local keyedRequest
	kr := &local
	if tmpl != nil {
		local = *tmpl
		local.header, local.rules.Header = r.Header, r.Header
	} else if kr, err = up.key(r, http.MethodGet, target, nil, nil, memo); err != nil {
		return false
	}
	mem, ok := up.Backend.(cache.MemoryPeeker)
	if !ok {
		// Nothing to peek at without I/O; a herd may still be joined.
		return g.joinMiss(w, r, up, kr, target, start)
	}
	// The body's file, if the tier keeps one, goes out with sendfile.
	var file cache.BodyFile
	fp, _ := mem.(cache.BodyFilePeeker)
	entry, _ := lookupWith(kr, func(key string) (*cache.Entry, bool, error) {
		if fp != nil {
			e, f, ok := fp.PeekMemoryFile(key)
			file = f
			return e, ok, nil
		}
		e, ok := mem.PeekMemory(key)
		return e, ok, nil
	})
	if entry == nil {
		return g.joinMiss(w, r, up, kr, target, start)
	}
	// Reading the clock costs more than it should on some VMs (3.5% of
	// a hit's CPU for four reads, measured): the start stands in for now.
	now := start
	if !g.wallClock {
		now = g.now()
	}
	j := up.Policy.Judge(entry, r.Header, now)
	if j.Use != cache.UseFresh {
		return false
	}
	up.counters.Requests.Add(1)
	rw := writers.Get().(*countingWriter)
	// The ID goes to the access log; the lane sends the header.
	*rw = countingWriter{ResponseWriter: w, writeTimeout: g.writeTimeout, requestID: g.RequestID(r.Header)}
	var outcome string
	if hr, ok := w.(headReplayer); ok && r.Method == http.MethodGet {
		outcome = g.serveHit(rw, hr, r, up, entry, file, now, j.Age, start)
	} else {
		outcome = g.serveCached(rw, r, up, entry, file, Hit, "hit", now, j.Age, start)
	}
	g.published(start, r, up, target, outcome, rw)
	return true
}

// joinMiss answers r, whose key is not in memory, from the cache-miss call
// another request is making for it, as fetchShared answers the requests
// that wait for a call. It returns false, having written and counted
// nothing, when no such call is under way or its result cannot answer r.
//
// kr may live on the caller's stack: it is copied only to join a call.
func (g *Gateway) joinMiss(w http.ResponseWriter, r *http.Request, up *upstream, kr *keyedRequest, target *url.URL, start time.Time) bool {
	res, ok := g.flights.waitMiss(up.Name + "\x00" + kr.base)
	if !ok {
		return false
	}
	kr = kr.forHeader(kr.header)
	shared, ok := forWaiter(res, kr)
	if !ok {
		return false
	}
	up.counters.Requests.Add(1)
	up.counters.Coalesced.Add(1)
	rw := writers.Get().(*countingWriter)
	*rw = countingWriter{ResponseWriter: w, writeTimeout: g.writeTimeout, requestID: g.RequestID(r.Header), coalesced: true}
	outcome := g.answer(rw, r, up, kr, shared, nil, "uri-miss", cache.Judgement{})
	g.published(start, r, up, target, outcome, rw)
	return true
}

// hasDirectives reports whether a request carries anything that asks the
// gateway for more than the stored response: cache directives, an
// upgrade, or one of the gateway's own headers (force refresh, expiry,
// the admin token): ServeHTTP decides whether those count, and answers a
// wrong token, so a request carrying one never takes the fast path.
func hasDirectives(h http.Header) bool {
	if len(h["Cache-Control"]) > 0 || len(h["Pragma"]) > 0 || len(h["Upgrade"]) > 0 {
		return true
	}
	for k := range h {
		if strings.HasPrefix(k, "X-Cachegate-") {
			return true
		}
	}
	return false
}
