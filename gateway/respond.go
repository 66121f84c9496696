package gateway

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"syscall"
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

// writeEntry writes a stored (or just fetched) response. An age >= 0 is
// sent as Age: the time the entry has spent in caches.
//
// withEntry adds the entry's key and times (Policy.EntryHeaders): they are
// the same on every answer from one entry, so a memoized head holds them.
func writeEntry(w *countingWriter, r *http.Request, e *cache.Entry, bodyFile cache.BodyFile, header http.Header, xcache, cacheStatus string, age time.Duration, withEntry bool) {
	h := w.Header()
	for k, v := range header {
		if k == "Content-Length" {
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
	if BodyAllowed(e.Status) {
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
func writeBody(w *countingWriter, r *http.Request, e *cache.Entry, bodyFile cache.BodyFile) {
	if r.Method != http.MethodHead && BodyAllowed(e.Status) {
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
	file cache.BodyFile
	size int64
}

func (b *fileBody) BodyFile() (f syscall.Conn, off, n int64) { return b.file, 0, b.size }

// BodyAllowed reports whether a response with this status may have a
// body (RFC 9110 6.4.1). Both doors use it: the gateway and web/fastlane.
func BodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// countingWriter remembers the status and counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	// writeTimeout is the gateway's Options.WriteTimeout, for writeBody.
	writeTimeout time.Duration
	// For the access log: the request's ID, how long the upstream took
	// to answer when it was called, and whether the answer came from
	// another request's call (coalesced).
	requestID    string
	upstreamTook time.Duration
	coalesced    bool
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
