package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// The X-Cache values: what the gateway did with a request.
const (
	Hit         = "HIT"         // answered from a fresh entry
	Miss        = "MISS"        // fetched from the upstream
	Stale       = "STALE"       // answered from a stale entry (stale-if-error, stale-while-revalidate, max-stale)
	Revalidated = "REVALIDATED" // the entry was confirmed by a conditional request (304)
	Bypass      = "BYPASS"      // passed through without using the cache
)

// fetchResult is the outcome of one upstream exchange for a cacheable
// request, shared by the requests collapsed onto it.
type fetchResult struct {
	// entry is the answer with its complete body, stored or not.
	entry *cache.Entry
	// header is the upstream's full response header, Set-Cookie included,
	// for the request that made the call.
	header   http.Header
	stored   bool
	decision cache.Decision
	// notModified: the upstream confirmed the stale entry with 304.
	notModified bool
	// written: the body was too large to read before answering, and the
	// call streamed it to its client (the sink) as it arrived; outcome is
	// the X-Cache it sent. abort: the upstream failed after the headers
	// went out, and the client's connection must be cut.
	written bool
	abort   bool
	outcome string
	// err is an *UpstreamError.
	err error
	// shareable results may answer requests collapsed onto this one.
	shareable bool
}

// ServeHTTP answers /fetch/<upstream>/<path>?<query>.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name, rest, ok := splitFetchPath(r.URL.EscapedPath())
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "gateway paths are /fetch/<upstream>/<path>", "")
		return
	}
	up, err := g.upstream(name)
	if err != nil {
		writeError(w, http.StatusNotFound, "unknown_upstream", err.Error(), "")
		return
	}
	up.counters.Requests.Add(1)
	if msg, refused := refusedMethods[r.Method]; refused {
		up.counters.Errors.Add(1)
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", msg, name)
		return
	}
	if sent, valid := up.tokenSent(r.Header); sent && !valid {
		// A client that sends a token wants its control headers obeyed:
		// ignoring them silently would hide the mistake.
		up.counters.Errors.Add(1)
		writeError(w, http.StatusForbidden, "bad_token", up.badToken(), name)
		return
	}
	target, tmpl, memo, err := up.resolve(r, rest)
	if err != nil {
		up.counters.Errors.Add(1)
		writeError(w, http.StatusBadRequest, "bad_path", err.Error(), name)
		return
	}
	rw := writers.Get().(*countingWriter)
	*rw = countingWriter{ResponseWriter: w, writeTimeout: g.writeTimeout}
	outcome := g.serve(rw, r, up, target, tmpl, memo, start)
	g.published(start, r, up, target, outcome, rw)
}

// refusedMethods are never forwarded, whatever the upstream's rules: each
// would turn the gateway into something it must not be.
var refusedMethods = map[string]string{
	http.MethodTrace:   "TRACE is not forwarded: the upstream would echo the request back, credentials included",
	http.MethodConnect: "CONNECT is not forwarded: cachegate is a gateway to its configured upstreams, not a tunnel",
}

// published tells the event hub's subscribers (the dashboard) about a
// request that has been answered, and recycles its writer.
func (g *Gateway) published(start time.Time, r *http.Request, up *upstream, target *url.URL, outcome string, rw *countingWriter) {
	var took time.Duration
	if outcome == Miss || outcome == Revalidated {
		// Hits were timed by countCached; only answers that waited for
		// the upstream pay for another clock read here.
		took = time.Since(start)
		up.counters.missLatency.observe(took)
	}
	if g.hub.Subscribers() > 0 && g.hub.Admit() {
		if took == 0 {
			took = time.Since(start)
		}
		g.hub.Publish(Event{
			Type: "request", Time: start, Upstream: up.Name, Method: r.Method,
			target: target, policy: &up.Policy, Cache: outcome, Status: rw.status,
			Bytes: rw.n, Duration: float64(took.Microseconds()) / 1000,
		})
	}
	*rw = countingWriter{}
	writers.Put(rw)
}

// resolve finds the upstream URL of a request for up, whose path below
// the upstream's name is rest. tmpl, when not nil, is the memoized key of
// an identical earlier request; memo, when not empty, is where to memoize
// this one's.
func (up *upstream) resolve(r *http.Request, rest string) (target *url.URL, tmpl *keyedRequest, memo keyMemoKey, err error) {
	// The memo is keyed by the request line as sent, which names the
	// path and query exactly; the method is checked against the entry.
	if up.memoable(r) && strings.HasPrefix(r.RequestURI, "/fetch/") {
		memo = keyMemoKey(r.RequestURI)
		if t := up.memo.get(memo); t != nil && t.reqMethod == r.Method {
			return t.target, t, memo, nil
		}
	}
	target, err = up.target(rest, r.URL.RawQuery)
	return target, nil, memo, err
}

// key computes the cache key of r, from the memoized template when there
// is one, and memoizes it when memo names where.
func (up *upstream) key(r *http.Request, cacheMethod string, target *url.URL, body []byte, tmpl *keyedRequest, memo keyMemoKey) (*keyedRequest, error) {
	if tmpl != nil {
		return tmpl.forHeader(r.Header), nil
	}
	kr, err := newKeyedRequest(up, cacheMethod, target, r.Header, body)
	if err == nil && memo != "" && body == nil {
		// The template keeps no request's header: a front end may reuse
		// that map for its next request (web/fastlane does).
		up.memo.put(memo, kr.forHeader(nil), r.Method)
	}
	return kr, err
}

// writers recycles the per-request countingWriter: nothing keeps it once
// ServeHTTP returns (background refreshes never write to the client).
var writers = sync.Pool{New: func() any { return new(countingWriter) }}

// serve handles one request for up and returns the X-Cache outcome (or
// "ERROR") for events.
// tmpl, when not nil, is the memoized key of an identical earlier request;
// memo, when not empty, is where to memoize this one's.
func (g *Gateway) serve(w *countingWriter, r *http.Request, up *upstream, target *url.URL, tmpl *keyedRequest, memo keyMemoKey, start time.Time) string {
	p := &up.Policy
	cacheMethod := r.Method
	if r.Method == http.MethodHead && p.AllowsMethod(http.MethodGet) {
		// HEAD is answered from the GET entry; a miss fetches the GET so
		// the next GET or HEAD is a hit, as Varnish does.
		cacheMethod = http.MethodGet
	}
	reqCC := cache.RequestDirectives(r.Header)
	switch {
	case !p.AllowsMethod(cacheMethod):
		return g.passThrough(w, r, up, target, nil, "method")
	case p.Mode == cache.ModeRFC9111 && !isSafe(r.Method):
		// RFC 9111 4.4: an unsafe method must invalidate its target URI,
		// which would take its own stored response with it; a strict
		// shared cache passes it through even when allowable_methods
		// lists it.
		return g.passThrough(w, r, up, target, nil, "unsafe-method")
	case reqCC.Has("no-store"):
		return g.passThrough(w, r, up, target, nil, "no-store")
	case len(r.Header["Upgrade"]) > 0:
		return g.passThrough(w, r, up, target, nil, "upgrade")
	}

	var body []byte
	if cacheMethod != http.MethodGet && r.Body != nil && r.Body != http.NoBody {
		var tooBig bool
		var err error
		body, tooBig, err = readUpTo(r.Body, p.MaxBodySize)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request_body", "reading the request body: "+err.Error(), up.Name)
			return "ERROR"
		}
		if tooBig {
			return g.passThrough(w, r, up, target, io.MultiReader(bytes.NewReader(body), r.Body), "request-too-large")
		}
	}

	kr, err := up.key(r, cacheMethod, target, body, tmpl, memo)
	if err != nil {
		up.counters.Errors.Add(1)
		writeError(w, http.StatusBadRequest, "bad_header", err.Error(), up.Name)
		return "ERROR"
	}
	force := len(r.Header[cache.ForceRefreshHeader]) > 0 && isTrue(r.Header.Get(cache.ForceRefreshHeader)) && up.overrides(r.Header)

	var entry *cache.Entry
	var lookedUp time.Time // when this request looked, if it did
	if !force {
		lookedUp = time.Now()
		entry, err = g.lookup(r.Context(), up, kr)
		if err != nil {
			// A backend failure must not take the API down with it:
			// answer from the upstream.
			g.log.Warn("cache lookup failed", "upstream", up.Name, "backend", up.BackendName, "err", err)
		}
	}
	now := g.now()
	if entry == nil {
		if reqCC.Has("only-if-cached") {
			writeError(w, http.StatusGatewayTimeout, "not_cached", "only-if-cached: nothing usable is cached for this request", up.Name)
			return "ERROR"
		}
		fwd := "uri-miss"
		if force {
			fwd = "request"
		}
		res := g.fetchShared(w, r, up, kr, nil, lookedUp, fwd, false)
		return g.answer(w, r, up, kr, res, nil, fwd, cache.Judgement{})
	}

	j := p.Judge(entry, r.Header, now)
	switch {
	case j.Use == cache.UseFresh:
		return g.serveCached(w, r, up, entry, nil, Hit, "hit", now, j.Age, start)
	case j.Use == cache.UseStale:
		return g.serveCached(w, r, up, entry, nil, Stale, "hit; detail=max-stale", now, j.Age, start)
	case reqCC.Has("only-if-cached"):
		writeError(w, http.StatusGatewayTimeout, "not_cached", "only-if-cached: the cached entry must be revalidated first ("+j.Reason+")", up.Name)
		return "ERROR"
	case j.StaleWhileRevalidate:
		g.refreshInBackground(r, up, kr, entry)
		return g.serveCached(w, r, up, entry, nil, Stale, "hit; detail=stale-while-revalidate", now, j.Age, start)
	}
	fwd := "stale"
	if j.Fresh {
		fwd = "request"
	}
	res := g.fetchShared(w, r, up, kr, entry, time.Time{}, fwd, staleOnError(r, up, entry, j))
	return g.answer(w, r, up, kr, res, entry, fwd, j)
}

// answer writes the outcome of a fetch, falling back on the stale entry
// when the upstream failed and the rules allow it.
func (g *Gateway) answer(w *countingWriter, r *http.Request, up *upstream, kr *keyedRequest, res *fetchResult, stale *cache.Entry, fwd string, j cache.Judgement) string {
	if res.written {
		if res.abort {
			// Headers are gone already: all we can do is cut the
			// connection so the client sees the answer is incomplete.
			panic(http.ErrAbortHandler)
		}
		return res.outcome
	}
	failed := res.err != nil || (res.entry != nil && res.entry.Status >= 500 && !res.notModified)
	if failed && staleOnError(r, up, stale, j) {
		why := "upstream error"
		if res.err == nil {
			why = "upstream status " + strconv.Itoa(res.entry.Status)
		}
		g.log.Warn("serving stale entry", "upstream", up.Name, "url", kr.storedURL, "reason", why)
		now := g.now()
		return g.serveCached(w, r, up, stale, nil, Stale, "hit; fwd="+fwd+"; detail=stale-if-error", now, cache.CurrentAge(stale, now), time.Now())
	}
	if res.err != nil {
		up.counters.Errors.Add(1)
		g.log.Warn("upstream failed", "upstream", up.Name, "url", kr.storedURL, "err", res.err)
		writeUpstreamError(w, res.err, up.Name)
		return "ERROR"
	}
	status := "cachegate; fwd=" + fwd + "; fwd-status="
	xcache := Miss
	if res.notModified {
		xcache = Revalidated
		up.counters.Revalidated.Add(1)
		status += "304"
	} else {
		up.counters.Misses.Add(1)
		status += strconv.Itoa(res.entry.Status)
	}
	if res.stored {
		status += "; stored"
		if ttl := ttlSeconds(res.entry, g.now()); ttl != "" {
			status += "; ttl=" + ttl
		}
	} else if res.decision.Rule != "" {
		status += "; detail=" + strconv.Quote(res.decision.Rule)
	}
	h := res.entry.Header
	if res.header != nil {
		h = res.header
	}
	age := time.Duration(-1)
	if res.notModified {
		age = cache.CurrentAge(res.entry, g.now())
	}
	writeEntry(w, r, res.entry, nil, h, xcache, status, age)
	up.counters.BytesFromUpstream.Add(w.n)
	return xcache
}

// staleOnError reports whether a failed fetch (an error or a 5xx) would be
// answered from stale rather than passed on to the client.
func staleOnError(r *http.Request, up *upstream, stale *cache.Entry, j cache.Judgement) bool {
	return stale != nil && (j.StaleIfError || (j.Fresh && !cache.RequestDirectives(r.Header).Has("no-cache") && !mustValidate(up, stale)))
}

// serveCached answers from a stored entry; bodyFile, when not nil, holds
// its body for sendfile (cache.BodyFilePeeker).
//
// start is when the request arrived: the time answers from the cache take
// is counted from there, lookup included.
func (g *Gateway) serveCached(w *countingWriter, r *http.Request, up *upstream, e *cache.Entry, bodyFile *os.File, xcache, detail string, now time.Time, age time.Duration, start time.Time) string {
	// Built in one buffer: this runs on every hit.
	var buf [96]byte
	b := append(buf[:0], "cachegate; "...)
	b = append(b, detail...)
	if !e.Never() {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, secondsLeft(e, now), 10)
	}
	writeEntry(w, r, e, bodyFile, e.Header, xcache, string(b), age)
	return g.countCached(w, up, e, xcache, now, start)
}

// countCached counts an answer from the cache.
func (g *Gateway) countCached(w *countingWriter, up *upstream, e *cache.Entry, xcache string, now, start time.Time) string {
	took := time.Since(start)
	if xcache == Hit {
		up.counters.countHit(fetchLatency(e), took, e.Reason)
	} else {
		up.counters.Stale.Add(1)
	}
	up.counters.BytesFromCache.Add(w.n)
	up.counters.CacheAnswers.Add(1)
	up.counters.CacheNanos.Add(int64(took))
	up.hits.record(e.Key, now)
	return xcache
}

func ttlSeconds(e *cache.Entry, now time.Time) string {
	if e.Never() {
		return ""
	}
	return strconv.FormatInt(secondsLeft(e, now), 10)
}

// The whole seconds the gateway sends as an entry's time to live
// (Cache-Status ttl=) and as Age. The head memo keys on them: a hit's head
// is the same while they are.
func secondsLeft(e *cache.Entry, now time.Time) int64 { return wholeSeconds(e.Expires.Sub(now)) }
func wholeSeconds(d time.Duration) int64              { return int64(d / time.Second) }

// xcacheValues are the X-Cache header values, shared by every response
// (net/http only reads them) so that a hit does not allocate them.
var xcacheValues = map[string][]string{Hit: {Hit}, Miss: {Miss}, Stale: {Stale}, Revalidated: {Revalidated}, Bypass: {Bypass}}

// writeEntry writes a stored (or just fetched) response. An age >= 0 is
// sent as Age: the time the entry has spent in caches.
func writeEntry(w *countingWriter, r *http.Request, e *cache.Entry, bodyFile *os.File, header http.Header, xcache, cacheStatus string, age time.Duration) {
	h := w.Header()
	for k, v := range header {
		if k == "Content-Length" {
			continue
		}
		h[k] = v
	}
	// One backing array for the three fields we add.
	vals := make([]string, 3)
	vals[0] = cacheStatus
	h["Cache-Status"] = vals[0:1:1]
	if age >= 0 {
		vals[1] = strconv.FormatInt(wholeSeconds(age), 10)
		h["Age"] = vals[1:2:2]
	}
	h["X-Cache"] = xcacheValues[xcache]
	if e.Status == http.StatusOK && hasPreconditions(r) {
		// The client's own conditional or range request is answered from
		// the complete stored body.
		var modtime time.Time
		if lm, ok := cache.ParseHTTPDate(e.LastModified); ok {
			modtime = lm
		}
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = nil // no sniffing: the upstream said nothing
		}
		var out http.ResponseWriter = w
		if w.writeTimeout > 0 && len(e.Body) > prebuffer {
			rc := http.NewResponseController(w)
			defer rc.SetWriteDeadline(time.Time{})
			out = &deadlinePerWrite{countingWriter: w, rc: rc}
		}
		http.ServeContent(out, r, "", modtime, bytes.NewReader(e.Body))
		return
	}
	if bodyAllowed(e.Status) {
		vals[2] = strconv.Itoa(len(e.Body))
		h["Content-Length"] = vals[2:3:3]
	}
	w.WriteHeader(e.Status)
	writeBody(w, r, e, bodyFile)
}

// writeBody writes a stored response's body, once its head is out.
//
// A body larger than prebuffer is written under write deadlines (see
// hitChunk); a smaller one in one write without, which costs a hit
// nothing.
func writeBody(w *countingWriter, r *http.Request, e *cache.Entry, bodyFile *os.File) {
	if r.Method != http.MethodHead && bodyAllowed(e.Status) {
		var rc *http.ResponseController
		if w.writeTimeout > 0 && len(e.Body) > prebuffer {
			rc = http.NewResponseController(w)
			defer rc.SetWriteDeadline(time.Time{}) // not on the connection's next answer
		}
		if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok && bodyFile != nil {
			// The fast lane's writer sends the file with sendfile, or
			// the bytes when it cannot: one call, so one deadline for it
			// all, write_timeout per hitChunk.
			if rc != nil {
				_ = rc.SetWriteDeadline(time.Now().Add(w.writeTimeout * time.Duration(1+len(e.Body)/hitChunk)))
			}
			fb := &fileBody{file: bodyFile, size: int64(len(e.Body))}
			fb.Reset(e.Body)
			n, _ := rf.ReadFrom(fb)
			w.n += n
			return
		}
		if rc == nil {
			_, _ = w.Write(e.Body)
			return
		}
		for b := e.Body; len(b) > 0; {
			n := min(len(b), hitChunk)
			if err := rc.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
				n = len(b) // the writer has no deadlines: all at once
			}
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}
}

// deadlinePerWrite puts each write of a large conditional or range answer
// from the cache (http.ServeContent's, 32 KiB at most) under its own
// write deadline.
type deadlinePerWrite struct {
	*countingWriter
	rc *http.ResponseController
}

func (d *deadlinePerWrite) Write(p []byte) (int, error) {
	_ = d.rc.SetWriteDeadline(time.Now().Add(d.writeTimeout))
	return d.countingWriter.Write(p)
}

// hitChunk is the size of the writes of a large answer from the cache,
// each under its own write deadline: a client that stops reading is cut
// off after the gateway's WriteTimeout, one that reads at least hitChunk
// per WriteTimeout never is.
const hitChunk = 256 << 10

// fileBody is a stored body that its backend also keeps in a file. It
// reads as the bytes; BodyFile offers the file to a writer that can send
// it without copying (web/fastlane's).
type fileBody struct {
	bytes.Reader
	file *os.File
	size int64
}

func (b *fileBody) BodyFile() (f *os.File, off, n int64) { return b.file, 0, b.size }

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func hasPreconditions(r *http.Request) bool {
	h := r.Header
	return len(h["If-None-Match"]) > 0 || len(h["If-Modified-Since"]) > 0 || len(h["Range"]) > 0 ||
		len(h["If-Match"]) > 0 || len(h["If-Unmodified-Since"]) > 0
}

// lookup finds the stored entry for a request, following Vary to the
// variant that matches its headers.
func (g *Gateway) lookup(ctx context.Context, up *upstream, kr *keyedRequest) (*cache.Entry, error) {
	return lookupWith(kr, func(key string) (*cache.Entry, bool, error) { return peek(ctx, up.Backend, key) })
}

// lookupWith is lookup over any way of peeking at stored entries.
func lookupWith(kr *keyedRequest, peek func(key string) (*cache.Entry, bool, error)) (*cache.Entry, error) {
	e, ok, err := peek(kr.base)
	if err != nil || !ok {
		return nil, err
	}
	if varyMatches(e, kr.header) {
		return e, nil
	}
	names := varyNames(e.Header)
	if len(names) == 0 {
		return nil, nil
	}
	v, ok, err := peek(variantKey(kr.base, names, kr.header))
	if err != nil || !ok || !varyMatches(v, kr.header) {
		return nil, err
	}
	return v, nil
}

// relayInterim returns ctx with a trace that passes the upstream's 1xx
// interim responses (103 Early Hints, 102 Processing) on to the client
// that made the call. They are never stored. The handler is blocked in
// the upstream call while the transport reports them, so writing to w
// here does not race with it.
func relayInterim(ctx context.Context, w http.ResponseWriter) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if code == http.StatusContinue || code == http.StatusSwitchingProtocols {
				return nil
			}
			wh := w.Header()
			for k, v := range h {
				wh[k] = v
			}
			w.WriteHeader(code)
			for k := range h {
				delete(wh, k) // interim fields are not the final response's
			}
			return nil
		},
	})
}

// peek reads an entry without copying it when the backend allows: the
// gateway never modifies what it looks up (it clones before changing).
func peek(ctx context.Context, b cache.Backend, key string) (*cache.Entry, bool, error) {
	if p, ok := b.(cache.Peeker); ok {
		return p.Peek(ctx, key)
	}
	return b.Get(ctx, key)
}

// fetchShared fetches through the flight group so that concurrent requests
// for one key make one upstream call. A request that cannot use the shared
// result (it was not storable, streams, or varies differently) makes its
// own call.
//
// lookedUp, when set, is when the request found nothing in the cache. A
// call for the key that ended after that was concurrent with the request,
// which then answers from what the call stored, as if it had waited for
// it: with a slow backend, a late request of a herd would otherwise miss
// the call by the time its own lookup ends, and call again.
//
// A body too large to read before answering streams to the request's
// client as it arrives (see sink); fwd is what Cache-Status then says the
// call was for, and staleOnError that a 5xx would be answered from stale,
// so it must not stream.
func (g *Gateway) fetchShared(w *countingWriter, r *http.Request, up *upstream, kr *keyedRequest, stale *cache.Entry, lookedUp time.Time, fwd string, staleOnError bool) *fetchResult {
	key := up.Name + "\x00" + kr.base
	if !lookedUp.IsZero() && g.flights.endedSince(key, lookedUp) {
		if e, err := g.lookup(r.Context(), up, kr); err == nil && e != nil {
			return &fetchResult{entry: e, stored: true, shareable: true}
		}
	}
	// The call outlives the client that started it: others may be waiting.
	ctx := context.WithoutCancel(r.Context())
	miss := stale == nil && !lookedUp.IsZero()
	out := &sink{w: w, r: r, fwd: fwd, staleOnError: staleOnError}
	res, leader := g.flights.do(key, miss, func() *fetchResult {
		return g.fetch(relayInterim(ctx, w), up, kr, stale, r, out)
	})
	if leader {
		return res
	}
	if shared, ok := forWaiter(res, kr); ok {
		up.counters.Coalesced.Add(1)
		return shared
	}
	return g.fetch(r.Context(), up, kr, stale, r, out)
}

// forWaiter returns the result of a call that another request made, as
// a request that waited for it answers: from the stored entry, without
// the leader's Set-Cookie. ok is false when the result cannot answer kr
// (not stored, failed, streamed, or another variant): kr then needs a
// call of its own.
func forWaiter(res *fetchResult, kr *keyedRequest) (shared *fetchResult, ok bool) {
	if res == nil || !res.shareable || res.err != nil || (res.entry != nil && !varyMatches(res.entry, kr.header)) {
		return nil, false
	}
	c := *res
	c.header = nil
	c.written, c.abort, c.outcome = false, false, ""
	return &c, true
}

// refreshInBackground refreshes a stale entry after it has been served
// (stale-while-revalidate). Refreshes are bounded; when all slots are busy
// the next request tries again.
func (g *Gateway) refreshInBackground(r *http.Request, up *upstream, kr *keyedRequest, stale *cache.Entry) {
	if g.flights.inFlight(up.Name + "\x00" + kr.base) {
		return
	}
	select {
	case g.bgSlots <- struct{}{}:
	default:
		return
	}
	ctx := context.WithoutCancel(r.Context())
	r2 := r.Clone(ctx)
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		defer func() { <-g.bgSlots }()
		g.flights.do(up.Name+"\x00"+kr.base, false, func() *fetchResult {
			return g.fetch(ctx, up, kr, stale, r2, nil)
		})
	}()
}

// fetch makes one upstream call for a cacheable request, conditional when
// a stale entry with validators is given, and stores the answer if the
// policy allows. The body is read whole before anything is stored: a failed
// or cut-off read stores nothing.
//
// A body of at most prebuffer bytes is read before fetch returns, and the
// caller answers from the result. A larger one streams to out's client as
// it arrives (the result is then written), collected for the backend at
// the same time if the in-flight budget can hold it; with no out (a
// background refresh) it is only collected.
func (g *Gateway) fetch(ctx context.Context, up *upstream, kr *keyedRequest, stale *cache.Entry, r *http.Request, out *sink) *fetchResult {
	req := outgoing(ctx, r, kr.target, kr.method, kr.body, true)
	if stale != nil {
		if stale.ETag != "" {
			req.Header.Set("If-None-Match", stale.ETag)
		}
		if stale.LastModified != "" {
			req.Header.Set("If-Modified-Since", stale.LastModified)
		}
	}
	reqTime := g.now()
	start := time.Now()
	resp, err := up.client.Do(req)
	up.counters.UpstreamCalls.Add(1)
	up.counters.UpstreamNanos.Add(int64(time.Since(start)))
	if err != nil {
		return &fetchResult{err: upstreamError(up.Name, unwrapURLError(err))}
	}
	respTime := g.now()
	removeHopByHop(resp.Header)
	rewriteLocation(resp.Header, up.URL, up.Name, kr.target)
	if len(resp.Header["Date"]) == 0 {
		// RFC 9110 section 6.6.1: a cache records when a response without
		// Date arrived, so its age stays right however long it is kept.
		resp.Header["Date"] = []string{respTime.UTC().Format(http.TimeFormat)}
	}
	p := &up.Policy

	if resp.StatusCode == http.StatusNotModified && stale != nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return g.refreshed(ctx, up, kr, stale, resp.Header, reqTime, respTime)
	}

	dec := p.Decide(kr.rules, cache.Response{Status: resp.StatusCode, Header: resp.Header, RequestTime: reqTime, ResponseTime: respTime, Size: resp.ContentLength})
	up.refused.note(kr.base, resp.StatusCode, dec, respTime)
	x := &exchange{resp: resp, dec: dec, reqTime: reqTime, respTime: respTime}
	defer x.releaseTo(g.inflight)
	// Bodies up to first are read before answering, as a whole.
	first := min(prebuffer, p.MaxBodySize)
	if resp.ContentLength > first {
		// Known to be large: straight to streaming.
		return g.stream(ctx, up, kr, x, out)
	}
	if !x.reserve(g.inflight, first+1) {
		x.why = "inflight-budget"
		return g.stream(ctx, up, kr, x, out)
	}
	body, tooBig, err := readUpTo(resp.Body, first)
	if err != nil {
		resp.Body.Close()
		return &fetchResult{err: upstreamError(up.Name, fmt.Errorf("reading the response body: %w", err))}
	}
	if tooBig {
		x.body = body
		return g.stream(ctx, up, kr, x, out)
	}
	resp.Body.Close()
	return g.complete(ctx, up, kr, x, body)
}

// complete stores, if the policy allows, a response whose body has been
// read whole, and returns it as the result of the call.
func (g *Gateway) complete(ctx context.Context, up *upstream, kr *keyedRequest, x *exchange, body []byte) *fetchResult {
	p := &up.Policy
	resp, dec, reqTime, respTime := x.resp, x.dec, x.reqTime, x.respTime
	if dec.Store {
		dec = p.Decide(kr.rules, cache.Response{Status: resp.StatusCode, Header: resp.Header, RequestTime: reqTime, ResponseTime: respTime, Size: int64(len(body))})
	}
	e := kr.newEntry(up, resp.StatusCode, resp.Header, body, reqTime, respTime, dec)
	res := &fetchResult{entry: e, header: resp.Header, decision: dec}
	if dec.Store {
		e.Key = g.storeKey(ctx, up, kr, e)
		if err := up.Backend.Put(ctx, e); err != nil {
			g.log.Error("cache store failed", "upstream", up.Name, "backend", up.BackendName, "url", kr.storedURL, "err", err)
		} else {
			res.stored = true
			res.shareable = true
			up.counters.rules.stored(RuleOf(dec.Reason))
		}
	}
	return res
}

// refreshed applies a 304 to the stale entry (RFC 9111 section 4.3.4):
// its stored headers are updated by those of the 304, its expiry is
// computed anew, the body is kept.
func (g *Gateway) refreshed(ctx context.Context, up *upstream, kr *keyedRequest, stale *cache.Entry, h http.Header, reqTime, respTime time.Time) *fetchResult {
	e := stale.Clone()
	for k, v := range h {
		switch k {
		case "Content-Length", "Content-Encoding", "Content-Range", "Transfer-Encoding", "Set-Cookie":
			continue
		}
		e.Header[k] = v
	}
	e.RequestTime, e.Created = reqTime, respTime
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: e.Status, Header: e.Header, RequestTime: reqTime, ResponseTime: respTime, Size: e.Size})
	e.Expires, e.Reason = dec.Expires, dec.Reason
	res := &fetchResult{entry: e, notModified: true, decision: dec, shareable: true}
	if !dec.Store {
		// The upstream's new headers forbid storing: serve the confirmed
		// body this once, and drop the entry.
		if _, err := up.Backend.Delete(ctx, stale.Key); err != nil {
			g.log.Warn("cache delete failed", "upstream", up.Name, "err", err)
		}
		return res
	}
	if err := up.Backend.Put(ctx, e); err != nil {
		g.log.Error("cache store failed", "upstream", up.Name, "backend", up.BackendName, "url", kr.storedURL, "err", err)
		return res
	}
	res.stored = true
	return res
}

// storeKey picks where a new response goes: under the base key, or, when
// it varies and the base slot holds a different variant, under its own
// variant key so several variants live side by side.
func (g *Gateway) storeKey(ctx context.Context, up *upstream, kr *keyedRequest, e *cache.Entry) string {
	names := varyNames(e.Header)
	if len(names) == 0 {
		return kr.base
	}
	existing, ok, err := peek(ctx, up.Backend, kr.base)
	if err != nil || !ok || len(varyNames(existing.Header)) == 0 || varyMatches(existing, kr.header) {
		return kr.base
	}
	return variantKey(kr.base, varyNames(existing.Header), kr.header)
}

// passThrough forwards a request the cache does not handle and streams the
// answer back. In rfc9111 mode an unsafe method that succeeds invalidates
// what is stored for its URL (RFC 9111 section 4.4).
func (g *Gateway) passThrough(w *countingWriter, r *http.Request, up *upstream, target *url.URL, body io.Reader, reason string) string {
	out := outgoing(relayInterim(r.Context(), w), r, target, r.Method, nil, false)
	if body != nil {
		out.Body = io.NopCloser(body)
	}
	var cb *clientBody
	if out.Body != nil && out.Body != http.NoBody {
		cb = &clientBody{ReadCloser: out.Body}
		out.Body = cb
	}
	start := time.Now()
	resp, err := up.client.Do(out)
	up.counters.UpstreamCalls.Add(1)
	up.counters.UpstreamNanos.Add(int64(time.Since(start)))
	if err != nil {
		if berr := cb.failure(); berr != nil {
			// The client sent a body that cannot be read (a malformed
			// chunk): its fault, not the upstream's.
			writeError(w, http.StatusBadRequest, "bad_request_body", "reading the request body: "+berr.Error(), up.Name)
			return "ERROR"
		}
		up.counters.Errors.Add(1)
		writeUpstreamError(w, upstreamError(up.Name, unwrapURLError(err)), up.Name)
		return "ERROR"
	}
	if up.Policy.Mode == cache.ModeRFC9111 && !isSafe(r.Method) && resp.StatusCode < 400 {
		g.invalidate(r.Context(), up, target, resp.Header)
	}
	removeHopByHop(resp.Header)
	rewriteLocation(resp.Header, up.URL, up.Name, target)
	up.counters.Bypass.Add(1)
	return g.streamThrough(w, r, up, resp, nil, "cachegate; fwd=bypass; fwd-status="+strconv.Itoa(resp.StatusCode)+"; detail="+reason)
}

// clientBody is a request body streamed to the upstream that remembers
// why reading it failed. The transport reads it on its own goroutine.
type clientBody struct {
	io.ReadCloser
	mu  sync.Mutex // protects err
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// failure returns the first error reading the body; nil for a nil b.
func (b *clientBody) failure() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// streamThrough copies an upstream response to the client without
// buffering it.
func (g *Gateway) streamThrough(w *countingWriter, r *http.Request, up *upstream, resp *http.Response, prefix []byte, cacheStatus string) string {
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	xcache := Bypass
	if !strings.Contains(cacheStatus, "fwd=bypass") {
		xcache = Miss
		up.counters.Misses.Add(1)
	}
	h.Set("X-Cache", xcache)
	h.Set("Cache-Status", cacheStatus)
	if resp.ContentLength >= 0 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method == http.MethodHead {
		return xcache
	}
	dw := g.newDeadlineWriter(w)
	defer dw.done()
	if len(prefix) > 0 && dw.write(prefix) != nil {
		return xcache
	}
	buf := make([]byte, streamChunk)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if dw.write(buf[:n]) != nil {
				break
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				// Headers are gone already: all we can do is cut the
				// connection so the client sees the answer is incomplete.
				g.log.Warn("upstream body cut off", "upstream", up.Name, "err", err)
				panic(http.ErrAbortHandler)
			}
			break
		}
	}
	up.counters.BytesFromUpstream.Add(w.n)
	return xcache
}

// invalidate removes the stored entries of a URL and of the Location and
// Content-Location of the response, when they are on the same upstream.
func (g *Gateway) invalidate(ctx context.Context, up *upstream, target *url.URL, h http.Header) {
	urls := []*url.URL{target}
	for _, f := range []string{"Location", "Content-Location"} {
		if v := h.Get(f); v != "" {
			if u, err := target.Parse(v); err == nil && strings.EqualFold(u.Host, target.Host) {
				urls = append(urls, u)
			}
		}
	}
	for _, u := range urls {
		_, stored, _ := normalizeURL(u, &up.Policy)
		n, err := up.Backend.DeleteMatching(ctx, cache.Filter{Upstream: up.Name, URL: stored})
		if err != nil {
			g.log.Warn("cache invalidation failed", "upstream", up.Name, "url", stored, "err", err)
			continue
		}
		if n > 0 {
			g.log.Debug("invalidated", "upstream", up.Name, "url", stored, "entries", n)
		}
	}
}

// mustValidate reports whether, in rfc9111 mode, a stored response says
// no-cache: it must not be used without a successful validation (RFC 9111
// section 5.2.2.4), so not even fresh when the upstream fails.
func mustValidate(up *upstream, e *cache.Entry) bool {
	if up.Policy.Mode != cache.ModeRFC9111 {
		return false
	}
	v, ok := cache.ParseCacheControl(e.Header)["no-cache"]
	return ok && v == ""
}

func isSafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func isTrue(s string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	return err == nil && b
}

// readUpTo reads r whole if it holds at most max bytes. Otherwise it
// returns what it read (max+1 bytes) with tooBig set, leaving the rest in r.
func readUpTo(r io.Reader, max int64) (b []byte, tooBig bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, false, err
	}
	return b, int64(len(b)) > max, nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error repeats the URL, secrets included: keep only the cause.
		return ue.Err
	}
	return err
}

// countingWriter remembers the status and counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	// writeTimeout is the gateway's Options.WriteTimeout, for writeBody.
	writeTimeout time.Duration
}

func (c *countingWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
