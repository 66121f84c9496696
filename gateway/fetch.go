package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

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
	out := &sink{w: w, r: r, fwd: fwd, staleOnError: staleOnError}
	res, leader := g.flights.do(key, func() *fetchResult {
		return g.fetch(relayInterim(ctx, w), up, kr, stale, r, out)
	})
	if leader {
		return res
	}
	if shared, ok := forWaiter(res, kr); ok {
		w.coalesced = true
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
		g.flights.do(up.Name+"\x00"+kr.base, func() *fetchResult {
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
	took := time.Since(start)
	up.counters.UpstreamCalls.Add(1)
	up.counters.UpstreamNanos.Add(int64(took))
	if out != nil {
		out.w.upstreamTook = took
	}
	if err != nil {
		uerr := upstreamError(up.Name, unwrapURLError(err))
		up.counters.countUpstreamError(uerr)
		return &fetchResult{err: uerr}
	}
	if resp.StatusCode >= 500 {
		up.counters.UpstreamErrors[err5xx].Add(1)
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
	if up.filterNow(resp.ContentLength) {
		// Judged before the body, so a refused one streams unstored.
		dec = up.filter(kr, dec, resp.StatusCode, resp.Header, resp.ContentLength)
	}
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
		up.counters.UpstreamErrors[errCutBody].Add(1)
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
		dec = up.filter(kr, dec, resp.StatusCode, resp.Header, int64(len(body)))
		if !dec.Store {
			up.refused.note(kr.base, resp.StatusCode, dec, respTime)
		}
	}
	if dec.Store {
		if err := checkEncoding(resp.Header, body); err != nil {
			return &fetchResult{err: upstreamError(up.Name, err)}
		}
	}
	e := kr.newEntry(up, resp.StatusCode, resp.Header, body, reqTime, respTime, dec)
	res := &fetchResult{entry: e, header: resp.Header, decision: dec}
	switch {
	case !dec.Store:
	case up.health.down.Load():
		res.unavailable = true
	default:
		e.Key = g.storeKey(ctx, up, kr, e)
		if err := up.Backend.Put(ctx, e); err != nil {
			g.log.Error("cache store failed", "upstream", up.Name, "backend", up.BackendName, "url", kr.storedURL, "err", err)
			g.backendFailed(up, err)
			res.unavailable = true
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
	mergeNotModified(e, h)
	e.RequestTime, e.Created = reqTime, respTime
	dec := up.Policy.Decide(kr.rules, cache.Response{Status: e.Status, Header: e.Header, RequestTime: reqTime, ResponseTime: respTime, Size: e.Size})
	dec = up.filter(kr, dec, e.Status, e.Header, e.Size)
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
	w.upstreamTook = time.Since(start)
	up.counters.UpstreamCalls.Add(1)
	up.counters.UpstreamNanos.Add(int64(w.upstreamTook))
	if err != nil {
		if berr := cb.failure(); berr != nil {
			// The client sent a body that cannot be read (a malformed
			// chunk): its fault, not the upstream's.
			writeError(w, http.StatusBadRequest, "bad_request_body", "reading the request body: "+berr.Error(), up.Name)
			return "ERROR"
		}
		uerr := upstreamError(up.Name, unwrapURLError(err))
		up.counters.countUpstreamError(uerr)
		writeUpstreamError(w, uerr, up.Name)
		return "ERROR"
	}
	if resp.StatusCode >= 500 {
		up.counters.UpstreamErrors[err5xx].Add(1)
	}
	if up.Policy.Mode == cache.ModeRFC9111 && !isSafe(r.Method) && resp.StatusCode < 400 {
		g.invalidate(r.Context(), up, target, resp.Header)
	}
	removeHopByHop(resp.Header)
	rewriteLocation(resp.Header, up.URL, up.Name, target)
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
				up.counters.UpstreamErrors[errCutBody].Add(1)
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
