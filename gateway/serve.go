package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
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
	// unavailable: the answer would have been stored, but the backend
	// has failed (see backendHealth).
	unavailable bool
}

// ServeHTTP answers /fetch/<upstream>/<path>?<query>.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := g.RequestID(r.Header)
	idHeader := []string{id}
	w.Header()[RequestIDHeader] = idHeader
	var rw *countingWriter
	var up *upstream
	var target *url.URL
	defer func() {
		if v := recover(); v != nil {
			// rw goes unpooled: the panic may have left it mid-use.
			written := rw != nil && rw.status != 0
			if written && up != nil {
				// The answer was cut after its head went out (an upstream
				// body cut off, a client gone): it is counted and logged
				// as what its head said, with the bytes that went out.
				g.published(start, r, up, target, abortedOutcome(rw.Header()), &rw.served)
			}
			g.recoverServe(w, r, start, id, v, written)
		}
	}()
	name, rest, ok := splitFetchPath(r.URL.EscapedPath())
	if !ok {
		g.refuse(w, r, start, id, http.StatusNotFound, "not_found", "gateway paths are /fetch/<upstream>/<path>", nil)
		return
	}
	var err error
	up, err = g.upstream(name)
	if err != nil {
		g.refuse(w, r, start, id, http.StatusNotFound, "unknown_upstream", err.Error(), nil)
		return
	}
	up.counters.Requests.Add(1)
	if msg, refused := refusedMethods[r.Method]; refused {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		g.refuse(w, r, start, id, http.StatusMethodNotAllowed, "method_not_allowed", msg, up)
		return
	}
	if sent, valid := up.tokenSent(r.Header); sent && !valid {
		// A client that sends a token wants its control headers obeyed:
		// ignoring them silently would hide the mistake.
		g.refuse(w, r, start, id, http.StatusForbidden, "bad_token", up.badToken(), up)
		return
	}
	var tmpl *keyedRequest
	var memo keyMemoKey
	target, tmpl, memo, err = up.resolve(r, rest)
	if err != nil {
		g.refuse(w, r, start, id, http.StatusBadRequest, "bad_path", err.Error(), up)
		return
	}
	rw = writers.Get().(*countingWriter)
	*rw = countingWriter{ResponseWriter: w, writeTimeout: g.writeTimeout, requestIDHeader: idHeader}
	rw.requestID = id
	outcome := g.serve(rw, r, up, target, tmpl, memo, start)
	g.published(start, r, up, target, outcome, &rw.served)
	*rw = countingWriter{}
	writers.Put(rw)
}

// abortedOutcome is the X-Cache of an answer cut after its head went out,
// "ERROR" if the head said none.
func abortedOutcome(h http.Header) string {
	if v := h.Get("X-Cache"); v != "" {
		return v
	}
	return "ERROR"
}

// refusedMethods are never forwarded, whatever the upstream's rules: each
// would turn the gateway into something it must not be.
var refusedMethods = map[string]string{
	http.MethodTrace:   "TRACE is not forwarded: the upstream would echo the request back, credentials included",
	http.MethodConnect: "CONNECT is not forwarded: cachegate is a gateway to its configured upstreams, not a tunnel",
}

// published ends every /fetch/ request the gateway answers, whichever
// door it came through (ServeHTTP, or a door writing a Lookup's Answer):
// it times answers that waited for the upstream, and tells the event
// hub's subscribers (the dashboard) and the access log about the request.
func (g *Gateway) published(start time.Time, r *http.Request, up *upstream, target *url.URL, outcome string, res *served) {
	var took time.Duration
	if outcome != Hit {
		// Hits were timed by countCached; only the other answers pay for
		// another clock read here.
		took = time.Since(start)
		if outcome == Miss || outcome == Revalidated {
			up.counters.missLatency.observe(took)
		}
	}
	up.counters.ended(r.Method, outcome, res.coalesced, took)
	if g.hub.Subscribers() > 0 && g.hub.Admit() {
		if took == 0 {
			took = time.Since(start)
		}
		g.hub.Publish(Event{
			Type: "request", Time: start, Upstream: up.Name, Method: r.Method,
			target: target, policy: &up.Policy, Cache: outcome, Status: res.status,
			Bytes: res.n, Duration: float64(took.Microseconds()) / 1000,
		})
	}
	if g.access != nil {
		g.access.record(start, r, up, target, outcome, res, took)
	}
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
	case up.bypassed.Load():
		return g.passThrough(w, r, up, target, nil, "bypassed")
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
		writeError(w, http.StatusBadRequest, "bad_header", err.Error(), up.Name)
		return "ERROR"
	}
	force := len(r.Header[cache.ForceRefreshHeader]) > 0 && isTrue(r.Header.Get(cache.ForceRefreshHeader)) && up.overrides(r.Header)

	var entry *cache.Entry
	var lookedUp time.Time // when this request looked, if it did
	if !force && !up.health.down.Load() {
		lookedUp = time.Now()
		entry, err = g.lookup(r.Context(), up, kr)
		if err != nil {
			// A backend failure must not take the API down with it:
			// answer from the upstream.
			g.log.Warn("cache lookup failed", "upstream", up.Name, "backend", up.BackendName, "err", err)
			g.backendFailed(up, err)
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
		return g.serveCached(w, r, up, entry, Hit, "hit", now, j.Age, start)
	case j.Use == cache.UseStale:
		return g.serveCached(w, r, up, entry, Stale, "hit; detail=max-stale", now, j.Age, start)
	case reqCC.Has("only-if-cached"):
		writeError(w, http.StatusGatewayTimeout, "not_cached", "only-if-cached: the cached entry must be revalidated first ("+j.Reason+")", up.Name)
		return "ERROR"
	case j.StaleWhileRevalidate:
		g.refreshInBackground(r, up, kr, entry)
		return g.serveCached(w, r, up, entry, Stale, "hit; detail=stale-while-revalidate", now, j.Age, start)
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
		return g.serveCached(w, r, up, stale, Stale, "hit; fwd="+fwd+"; detail=stale-if-error", now, cache.CurrentAge(stale, now), time.Now())
	}
	if res.err != nil {
		g.log.Warn("upstream failed", "upstream", up.Name, "url", kr.storedURL, "err", res.err)
		writeUpstreamError(w, res.err, up.Name)
		return "ERROR"
	}
	status := "cachegate; fwd=" + fwd + "; fwd-status="
	xcache := Miss
	if res.notModified {
		xcache = Revalidated
		status += "304"
	} else {
		status += strconv.Itoa(res.entry.Status)
	}
	if res.stored {
		status += "; stored"
		if ttl := ttlSeconds(res.entry, g.now()); ttl != "" {
			status += "; ttl=" + ttl
		}
	} else if res.unavailable {
		status += "; detail=" + backendUnavailable
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
	writeEntry(w, r, res.entry, h, xcache, status, age, up.Policy.EntryHeaders && (res.stored || res.notModified))
	up.counters.BytesFromUpstream.Add(w.n)
	return xcache
}

// staleOnError reports whether a failed fetch (an error or a 5xx) would be
// answered from stale rather than passed on to the client.
func staleOnError(r *http.Request, up *upstream, stale *cache.Entry, j cache.Judgement) bool {
	return stale != nil && (j.StaleIfError || (j.Fresh && !cache.RequestDirectives(r.Header).Has("no-cache") && !mustValidate(up, stale)))
}

// serveCached answers from a stored entry through net/http.
//
// start is when the request arrived: the time answers from the cache take
// is counted from there, lookup included.
func (g *Gateway) serveCached(w *countingWriter, r *http.Request, up *upstream, e *cache.Entry, xcache, detail string, now time.Time, age time.Duration, start time.Time) string {
	writeEntry(w, r, e, e.Header, xcache, cachedStatus(e, detail, now), age, up.Policy.EntryHeaders)
	return g.countCached(w.n, up, e, xcache, now, start)
}

// countCached counts an answer from the cache of n body bytes, whichever
// door wrote it.
func (g *Gateway) countCached(n int64, up *upstream, e *cache.Entry, xcache string, now, start time.Time) string {
	took := time.Since(start)
	if xcache == Hit {
		up.counters.countHit(fetchLatency(e), took, e.Reason)
	}
	up.counters.BytesFromCache.Add(n)
	up.counters.CacheAnswers.Add(1)
	up.counters.CacheNanos.Add(int64(took))
	up.hits.record(e.Key, now)
	return xcache
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
