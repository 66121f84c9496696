package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// prebuffer is the largest body read whole before its client gets a
// byte. Such an answer carries its exact Content-Length and Cache-Status,
// a 5xx can still give way to a stale entry, and the client's own
// conditions and ranges are answered from the whole body. A larger body
// streams to its client as it arrives, so what a miss holds in memory
// does not grow with the body unless it is being collected for the
// backend, and then the in-flight budget bounds it.
const prebuffer = 64 << 10

// reserveStep is how much more of the budget a body of unknown length
// takes at a time once it outgrows what it holds.
const reserveStep = 1 << 20

// streamChunk is the size of the reads of a streamed body.
const streamChunk = 32 << 10

// sink is the client of the request that makes an upstream call: a body
// too large to read before answering streams to it as it arrives.
type sink struct {
	w *countingWriter
	r *http.Request
	// fwd is Cache-Status's fwd= for the call.
	fwd string
	// staleOnError: a 5xx would be answered from a stale entry, so it
	// must not stream.
	staleOnError bool
}

// exchange is an upstream response being read, and the share of the
// in-flight budget its body holds.
type exchange struct {
	resp              *http.Response
	dec               cache.Decision
	reqTime, respTime time.Time
	// body is what has been read before streaming began.
	body []byte
	// grant is how many bytes of the budget the body holds.
	grant int64
	// why, when set, is why the body is not collected for the backend,
	// as Cache-Status's detail= says it.
	why string
}

// reserve makes the exchange hold at least n bytes of b, and reports
// whether it could.
func (x *exchange) reserve(b *budget, n int64) bool {
	if n <= x.grant {
		return true
	}
	if !b.acquire(n - x.grant) {
		return false
	}
	x.grant = n
	return true
}

// releaseTo gives the exchange's share back to b.
func (x *exchange) releaseTo(b *budget) {
	b.release(x.grant)
	x.grant = 0
}

// stream reads a body too large to read before answering: to out's
// client as it arrives, and into memory for the backend if the policy
// stores it and the in-flight budget can hold it. With no out (a
// background refresh) it is only collected, or dropped.
//
// Once the headers are out, Cache-Status can no longer change: for a body
// of known length it says stored (the budget holds the whole length) or
// why not; for one of unknown length it says detail=streamed, and the
// next request shows whether it was stored. An upstream failure after the
// headers leaves nothing stored and the result says to cut the
// connection.
//
// If the client goes away, a body being collected is still read to its
// end (bounded by the upstream's read_timeout and total_timeout), for the
// backend and the requests waiting for the call; one that is not is
// dropped at once.
//
// The body is collected in memory, not spilled to a temporary file:
// cache.Entry.Body is a []byte, so storing needs the whole body in memory
// once anyway. A file would only move that moment to the end, and add a
// disk write and read; the budget bounds the memory either way.
func (g *Gateway) stream(ctx context.Context, up *upstream, kr *keyedRequest, x *exchange, out *sink) *fetchResult {
	resp := x.resp
	defer resp.Body.Close()
	p := &up.Policy
	n := resp.ContentLength
	collect := x.why == "" && x.dec.Store
	switch {
	case collect && up.health.down.Load():
		collect, x.why = false, backendUnavailable
	case n > p.MaxBodySize || (n < 0 && int64(len(x.body)) > p.MaxBodySize):
		collect, x.why = false, "too-large"
	case !collect:
	case n >= 0:
		if !x.reserve(g.inflight, n) {
			collect, x.why = false, "inflight-budget"
		}
	default:
		if !x.reserve(g.inflight, int64(len(x.body))+reserveStep) {
			collect, x.why = false, "inflight-budget"
		}
	}
	if x.why == "" && !collect && x.dec.Rule != "" {
		x.why = strconv.Quote(x.dec.Rule)
	}
	if x.why == "inflight-budget" {
		g.log.Debug("in-flight budget full: streaming without storing", "upstream", up.Name, "url", kr.storedURL)
	}

	if resp.StatusCode >= 500 && (out == nil || out.staleOnError) {
		// The caller answers from the stale entry; nothing of this body
		// is needed.
		return &fetchResult{entry: kr.newEntry(up, resp.StatusCode, resp.Header, nil, x.reqTime, x.respTime, x.dec), header: resp.Header, decision: x.dec}
	}
	if out == nil && !collect {
		return &fetchResult{decision: x.dec}
	}

	col := &collector{g: g, up: up, x: x, url: kr.storedURL, max: p.MaxBodySize, on: collect}
	if collect {
		if n >= 0 {
			col.body = make([]byte, 0, n)
			col.body = append(col.body, x.body...)
		} else {
			col.body = x.body
		}
	}
	// raw is the rest of the upstream's body, collected as it is read.
	var raw io.Reader = &upstreamBody{r: resp.Body}
	if collect {
		raw = io.TeeReader(raw, col)
	}
	// A client that does not accept the body's coding gets it decoded as
	// it arrives, never bytes it cannot read.
	decode := out != nil && codedAgainst(out.r, resp.Header)

	var dw *deadlineWriter
	clientGone := true
	if out != nil {
		clientGone = out.r.Method == http.MethodHead
	}
	// client is what the client is sent, after the head and x.body when
	// the body is sent as it came.
	client := raw
	if decode && !clientGone {
		d, err := decoder(resp.Header, io.MultiReader(bytes.NewReader(x.body), raw))
		if err != nil {
			// Nothing has been sent yet: the caller answers the error,
			// or from a stale entry.
			col.drop()
			return &fetchResult{err: upstreamError(up.Name, err)}
		}
		defer d.Close()
		client = d
	}
	if out != nil {
		dw = g.startStream(out.w, resp, g.streamStatus(out.fwd, resp, x, collect), decode)
		defer dw.done()
	}
	if clientGone && !collect {
		up.counters.BytesFromUpstream.Add(out.w.n)
		return &fetchResult{written: true, outcome: Miss, decision: x.dec}
	}
	if !clientGone && !decode && len(x.body) > 0 {
		clientGone = dw.write(x.body) != nil
	}
	if !collect {
		x.body = nil
		x.releaseTo(g.inflight)
	}
	buf := make([]byte, streamChunk)
	for {
		if clientGone && !col.on {
			break
		}
		var nr int
		var err error
		if clientGone {
			// Read on for the backend alone.
			nr, err = raw.Read(buf)
		} else {
			nr, err = client.Read(buf)
			if nr > 0 {
				clientGone = dw.write(buf[:nr]) != nil
			}
			if decode && errors.Is(err, io.EOF) && col.on {
				// Whatever follows the coded body is the backend's.
				clientGone, err = true, nil
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		var bad *encodingError
		if errors.As(err, &bad) {
			g.log.Warn("upstream body does not decode from its Content-Encoding", "upstream", up.Name, "url", kr.storedURL, "err", err)
			col.drop()
			return &fetchResult{written: true, abort: true, outcome: Miss, err: upstreamError(up.Name, err)}
		}
		if err != nil {
			up.counters.UpstreamErrors[errCutBody].Add(1)
			g.log.Warn("upstream body cut off", "upstream", up.Name, "url", kr.storedURL, "err", err)
			col.drop()
			if out == nil {
				return &fetchResult{err: upstreamError(up.Name, err)}
			}
			return &fetchResult{written: true, abort: true, outcome: Miss, err: upstreamError(up.Name, err)}
		}
	}
	if out != nil {
		up.counters.BytesFromUpstream.Add(out.w.n)
	}
	if !col.on {
		return &fetchResult{written: out != nil, outcome: Miss, decision: x.dec}
	}
	res := g.complete(ctx, up, kr, x, col.body)
	res.written, res.outcome = out != nil, Miss
	return res
}

// upstreamBody marks the errors of reading an upstream's body, so that a
// decoder's reader can tell them from a body that does not decode.
type upstreamBody struct{ r io.Reader }

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyReadError{err}
	}
	return n, err
}

// collector gathers a streamed body for the backend, within max_body_size
// and the in-flight budget; once it cannot, it lets go of what it holds
// and gathers nothing more. It never fails a write: the client's copy of
// the body goes on either way.
type collector struct {
	g    *Gateway
	up   *upstream
	x    *exchange
	url  string
	max  int64
	body []byte
	on   bool
}

func (c *collector) Write(p []byte) (int, error) {
	if !c.on {
		return len(p), nil
	}
	if c.grow(len(p)) {
		c.body = append(c.body, p...)
	} else {
		c.drop()
		c.g.log.Debug("not storing a streamed body", "upstream", c.up.Name, "url", c.url, "reason", c.x.why)
	}
	return len(p), nil
}

// drop stops collecting and gives the body's share of the budget back.
func (c *collector) drop() {
	c.on, c.body = false, nil
	c.x.releaseTo(c.g.inflight)
}

// grow makes room in the body for m more bytes, within max_body_size and
// the budget; false means it cannot.
func (c *collector) grow(m int) bool {
	x, b := c.x, c.g.inflight
	if len(c.body)+m <= cap(c.body) && int64(cap(c.body)) <= x.grant {
		return true
	}
	need := int64(len(c.body) + m)
	if need > c.max {
		x.why = "too-large"
		return false
	}
	newCap := min(max(2*int64(cap(c.body)), need, reserveStep), c.max)
	// The old buffer is held until the copy is made.
	if !b.acquire(newCap) {
		x.why = "inflight-budget"
		return false
	}
	nb := make([]byte, len(c.body), newCap)
	copy(nb, c.body)
	b.release(x.grant)
	x.grant, c.body = newCap, nb
	return true
}

// streamStatus is the Cache-Status of a miss whose body streams.
func (g *Gateway) streamStatus(fwd string, resp *http.Response, x *exchange, collect bool) string {
	s := "cachegate; fwd=" + fwd + "; fwd-status=" + strconv.Itoa(resp.StatusCode)
	switch {
	case !collect && x.why != "":
		s += "; detail=" + x.why
	case !collect:
	case resp.ContentLength >= 0:
		s += "; stored"
		if !x.dec.Expires.IsZero() {
			s += "; ttl=" + strconv.FormatInt(wholeSeconds(x.dec.Expires.Sub(g.now())), 10)
		}
	default:
		s += "; detail=streamed"
	}
	return s
}

// startStream sends the head of an upstream response whose body follows
// as it arrives, decoded or as it came, and returns the writer for the
// body.
func (g *Gateway) startStream(w *countingWriter, resp *http.Response, cacheStatus string, decoded bool) *deadlineWriter {
	h := w.Header()
	src := resp.Header
	if decoded {
		src = decodedHeader(src)
	}
	for k, v := range src {
		h[k] = v
	}
	h["X-Cache"] = xcacheValues[Miss]
	h.Set("Cache-Status", cacheStatus)
	if resp.ContentLength >= 0 && !decoded {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	} else {
		h.Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode)
	return g.newDeadlineWriter(w)
}

// deadlineWriter writes a long answer to a client, each write under its
// own deadline (Options.WriteTimeout): a client that stops reading is cut
// off after that long, one that keeps reading is never, however long the
// body takes.
type deadlineWriter struct {
	w       *countingWriter
	rc      *http.ResponseController
	timeout time.Duration
	set     bool // a write deadline is in force, to lift at the end
}

// newDeadlineWriter returns the writer of a long answer to w. Each write
// is flushed: what the upstream sent reaches the client at once, rather
// than the last few KiB waiting in net/http's buffer for the next chunk.
func (g *Gateway) newDeadlineWriter(w *countingWriter) *deadlineWriter {
	return &deadlineWriter{w: w, rc: http.NewResponseController(w), timeout: g.writeTimeout}
}

func (d *deadlineWriter) write(p []byte) error {
	if d.timeout > 0 {
		if err := d.rc.SetWriteDeadline(time.Now().Add(d.timeout)); err == nil {
			d.set = true
		} else {
			d.timeout = 0 // not supported by this writer
		}
	}
	if _, err := d.w.Write(p); err != nil {
		return err
	}
	if err := d.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// done lifts the write deadline, so that it does not fall on the
// connection's next answer.
func (d *deadlineWriter) done() {
	if d.set {
		_ = d.rc.SetWriteDeadline(time.Time{})
	}
}
