package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/cachegate/cachegate/cache"
)

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

func wholeSeconds(d time.Duration) int64 { return int64(d / time.Second) }

// The headers of Policy.EntryHeaders, as requests-cache's CachedResponse
// names them: cache_key, created_at, expires.
const (
	EntryKeyHeader     = "X-Cachegate-Key"
	EntryCreatedHeader = "X-Cachegate-Created"
	EntryExpiresHeader = "X-Cachegate-Expires"
)

// xcacheValues are the X-Cache header values, shared by every response
// (net/http only reads them) so that a hit does not allocate them.
var xcacheValues = map[string][]string{Hit: {Hit}, Miss: {Miss}, Stale: {Stale}, Revalidated: {Revalidated}, Bypass: {Bypass}}

// setEntryFields sets on h the fields of an answer from e: header (the
// entry's stored fields, or the upstream's whole header on a miss), the
// entry headers when withEntry (Policy.EntryHeaders: the same on every
// answer from one entry, so a memoized head holds them), Cache-Status,
// Age when age >= 0 (the time the entry has spent in caches), X-Cache,
// and with length the Content-Length of its body. Both doors build an
// answer's fields here: ServeHTTP into its ResponseWriter, Lookup into
// the head it renders.
//
// A stored X-Request-Id is left out: the field names the request being
// answered, which is not the one whose response was stored.
func setEntryFields(h http.Header, e *cache.Entry, header http.Header, xcache, cacheStatus string, age time.Duration, withEntry, length bool) {
	for k, v := range header {
		if k == "Content-Length" || k == RequestIDHeader {
			continue
		}
		h[k] = v
	}
	if withEntry {
		expires := "never"
		if !e.Never() {
			expires = e.Expires.UTC().Format(time.RFC3339)
		}
		h[EntryKeyHeader] = []string{e.Key}
		h[EntryCreatedHeader] = []string{e.Created.UTC().Format(time.RFC3339)}
		h[EntryExpiresHeader] = []string{expires}
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
	if length && BodyAllowed(e.Status) {
		vals[2] = strconv.Itoa(len(e.Body))
		h["Content-Length"] = vals[2:3:3]
	}
}

// cachedStatus is the Cache-Status of an answer from the cache: detail,
// then the entry's time to live. Built in one buffer: this runs on every
// hit.
func cachedStatus(e *cache.Entry, detail string, now time.Time) string {
	var buf [96]byte
	b := append(buf[:0], "cachegate; "...)
	b = append(b, detail...)
	if !e.Never() {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, secondsLeft(e, now), 10)
	}
	return string(b)
}

// writeEntry writes a stored (or just fetched) response through net/http;
// see setEntryFields for the fields.
func writeEntry(w *countingWriter, r *http.Request, e *cache.Entry, header http.Header, xcache, cacheStatus string, age time.Duration, withEntry bool) {
	if needsDecoding(r, e) {
		if e, header = decodeForClient(w, e, header); e == nil {
			return
		}
	}
	h := w.Header()
	ranged := e.Status == http.StatusOK && hasPreconditions(r)
	setEntryFields(h, e, header, xcache, cacheStatus, age, withEntry, !ranged)
	if ranged {
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
	w.WriteHeader(e.Status)
	writeBody(w, r, e)
}

// writeBody writes a stored response's body, once its head is out.
//
// A body larger than prebuffer is written under write deadlines (see
// HitChunk); a smaller one in one write without, which costs a hit
// nothing.
func writeBody(w *countingWriter, r *http.Request, e *cache.Entry) {
	if r.Method == http.MethodHead || !BodyAllowed(e.Status) {
		return
	}
	if w.writeTimeout <= 0 || len(e.Body) <= prebuffer {
		_, _ = w.Write(e.Body)
		return
	}
	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // not on the connection's next answer
	for b := e.Body; len(b) > 0; {
		n := min(len(b), HitChunk)
		if err := rc.SetWriteDeadline(time.Now().Add(w.writeTimeout)); err != nil {
			n = len(b) // the writer has no deadlines: all at once
		}
		if _, err := w.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
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

// HitChunk is the size of the writes of a large answer from the cache,
// each under its own write deadline, whichever door writes it: a client
// that stops reading is cut off after the gateway's WriteTimeout, one
// that reads at least HitChunk per WriteTimeout never is.
const HitChunk = 256 << 10

// BodyAllowed reports whether a response with this status may have a
// body (RFC 9110 6.4.1). Both doors use it: the gateway and web/fastlane.
func BodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// served is what the end of a request (published) reports of its answer
// to the dashboard and the access log, whichever door wrote it.
type served struct {
	status int
	n      int64 // body bytes written
	// The request's ID, how long the upstream took to answer when it was
	// called, and whether the answer came from another request's call.
	requestID    string
	upstreamTook time.Duration
	coalesced    bool
}

// countingWriter remembers the status and counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	served
	// writeTimeout is the gateway's Options.WriteTimeout, for writeBody.
	writeTimeout time.Duration
	// requestIDHeader, when set, is sent as X-Request-Id (ServeHTTP;
	// the fast lane sends its own).
	requestIDHeader []string
}

func (c *countingWriter) WriteHeader(status int) {
	// A 1xx relayed from the upstream (relayInterim) is not the status
	// of the answer.
	if c.status == 0 && status >= 200 {
		c.status = status
		if c.requestIDHeader != nil {
			// The request's ID wins over one in the upstream's header:
			// a stored one belongs to a request long gone.
			c.Header()[RequestIDHeader] = c.requestIDHeader
		}
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
