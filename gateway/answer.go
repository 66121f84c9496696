package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Answer is a response the gateway has decided on whole before a byte of
// it is written: a fresh entry held in memory, for a plain GET. Lookup
// returns it to a door that writes straight to its connection
// (web/fastlane), which sends Head, the request's X-Request-Id field at
// IDAt, then Body, and calls Done.
//
// Head is, byte for byte, what net/http writes for the same answer
// through ServeHTTP (TestAnswerHeadAsNetHTTP, FuzzAnswerHeadAsNetHTTP):
// the same fields, the same Date, the same sorted order, into which the
// request ID goes where net/http's order puts it.
type Answer struct {
	// Head runs from the status line to the blank line. It is shared by
	// the answers of one entry within one second: read it, never change it.
	Head []byte
	// IDAt is where in Head the X-Request-Id field goes.
	IDAt int
	// RequestID is the request's ID, for X-Request-Id.
	RequestID string
	// Body is the whole body, Content-Length bytes.
	Body []byte
	// File, when not nil, holds Body too, for a door that can send a
	// file without copying it (sendfile).
	File cache.BodyFile

	done answered
}

// answered is what Done needs to count an answer.
type answered struct {
	g      *Gateway
	up     *upstream
	entry  *cache.Entry
	req    *http.Request
	target *url.URL
	start  time.Time
	now    time.Time
	served served
}

// Lookup returns the answer to r when it is a plain cache hit: a GET below
// /fetch/ for a fresh entry that the upstream's backend holds in memory
// (cache.MemoryPeeker), from a request without directives, conditionals,
// ranges or gateway headers that could make the answer anything but the
// stored response, and whose Accept-Encoding takes the stored coding (a
// body to decode for the client is ServeHTTP's). The answer, its counters and its events are those
// ServeHTTP gives the same request, once Done is called.
//
// It never starts I/O and counts nothing when it returns false; the door
// then hands r to ServeHTTP, which decides everything else (a miss, a
// herd joining a fetch under way, an entry only on disk, HEAD).
func (g *Gateway) Lookup(r *http.Request) (Answer, bool) {
	// A recovered panic returns the zero Answer: declined.
	defer g.recoverLookup(r)
	return g.lookupHit(r)
}

func (g *Gateway) lookupHit(r *http.Request) (Answer, bool) {
	if r.Method != http.MethodGet || hasDirectives(r.Header) || hasPreconditions(r) {
		return Answer{}, false
	}
	start := time.Now()
	name, rest, ok := splitFetchPath(r.URL.EscapedPath())
	if !ok {
		return Answer{}, false
	}
	up, err := g.upstream(name)
	if err != nil || !up.Policy.AllowsMethod(http.MethodGet) || up.bypassed.Load() {
		return Answer{}, false
	}
	mem, ok := up.Backend.(cache.MemoryPeeker)
	if !ok {
		return Answer{}, false
	}
	target, tmpl, memo, err := up.resolve(r, rest)
	if err != nil {
		return Answer{}, false
	}
	// A memoized key is used in place: a hit allocates no key.
	var local keyedRequest
	kr := &local
	if tmpl != nil {
		local = *tmpl
		local.header, local.rules.Header = r.Header, r.Header
	} else if kr, err = up.key(r, http.MethodGet, target, nil, nil, memo); err != nil {
		return Answer{}, false
	}
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
	if entry == nil || !headRenderable(entry) || needsDecoding(r, entry) {
		return Answer{}, false
	}
	// Reading the clock costs more than it should on some VMs: the start
	// stands in for now.
	now := start
	if !g.wallClock {
		now = g.now()
	}
	j := up.Policy.Judge(entry, r.Header, now)
	if j.Use != cache.UseFresh {
		return Answer{}, false
	}
	up.counters.Requests.Add(1)
	a := Answer{Body: entry.Body, File: file, RequestID: g.RequestID(r.Header)}
	a.Head, a.IDAt = g.hitHead(up, entry, now, j.Age, start)
	a.done = answered{g: g, up: up, entry: entry, req: r, target: target, start: start, now: now,
		served: served{status: entry.Status, requestID: a.RequestID}}
	return a, true
}

// Done counts an answer Lookup returned, of which n body bytes were
// written, and tells the dashboard and the access log about it, as
// ServeHTTP does for the answers it writes. A door calls it once, before
// the answer's last bytes go out, so that a client that has read the
// answer can rely on the counters. An Answer not from Lookup counts
// nothing.
func (a *Answer) Done(n int64) {
	d := &a.done
	if d.g == nil {
		return
	}
	defer d.g.recoverDone(d)
	d.g.countCached(n, d.up, d.entry, Hit, d.now, d.start)
	d.served.n = n
	d.g.published(d.start, d.req, d.up, d.target, Hit, &d.served)
	*d = answered{}
}

// hasDirectives reports whether a request carries anything that asks the
// gateway for more than the stored response: cache directives, an
// upgrade, or one of the gateway's own headers (force refresh, expiry,
// the admin token): ServeHTTP decides whether those count, and answers a
// wrong token, so a request carrying one is never a plain hit.
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
