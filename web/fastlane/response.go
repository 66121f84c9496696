package fastlane

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cachegate/cachegate/gateway"
	"golang.org/x/net/http/httpguts"
)

// directWrite is the body write size from which the writer sends the
// head and the write together (writev) instead of copying the write.
const directWrite = 4 << 10

// writer is the http.ResponseWriter of a request the lane answers. It
// writes what net/http's would for the same calls (status line, sorted
// valid fields with newlines made spaces, Date, Content-Length when the
// handler is done before the body outgrows the buffer, Content-Type
// sniffed when unset) but builds the response in one buffer and sends it
// with one write, or one writev for a large body.
type writer struct {
	c      *conn
	header http.Header
	head   bool // a HEAD request: the body is not sent

	status  int
	sent    bool  // the head has been built into buf
	length  int64 // declared Content-Length once sent, -1 if none
	written int64
	buf     []byte // the head once sent, then body not yet written out
	body    []byte // body written before the head was built
	keys    []string
	err     error
	out     bool // some of the answer has gone to the client
	// closeAfter: the connection must close after this response (its
	// length was not declared, or the body did not match it).
	closeAfter bool

	// record: keep a copy of the head in recorded (see RecordHead).
	record       bool
	recorded     []byte
	recordedDate int64
}

func (w *writer) reset(c *conn, head bool) {
	h := w.header
	if h == nil {
		h = make(http.Header)
	}
	clear(h)
	*w = writer{c: c, header: h, head: head, length: -1, buf: w.buf[:0], body: w.body[:0], keys: w.keys[:0]}
}

func (w *writer) Header() http.Header { return w.header }

// SetWriteDeadline sets the connection's write deadline, as
// http.ResponseController does through net/http's writer: the gateway
// bounds each write of a large answer with it.
func (w *writer) SetWriteDeadline(t time.Time) error { return w.c.Conn.SetWriteDeadline(t) }

// RecordHead asks the writer to keep a copy of the head it builds for
// this response, for RecordedHead. A handler that answers the same
// response again can then send the head with ReplayHead and skip
// setting the fields and building the head (sorting, checking and
// rendering every field: a tenth of a cache hit's CPU).
func (w *writer) RecordHead() { w.record = true }

// RecordedHead returns the head built for this response once RecordHead
// was called, and the second (Unix time) of the Date field the writer
// added to it, -1 if the handler set Date. ok is false when the head is
// not one ReplayHead may send for another request: the writer added
// fields of its own besides Date (a length, a sniffed type, Connection:
// close).
func (w *writer) RecordedHead() (head []byte, date int64, ok bool) {
	return w.recorded, w.recordedDate, w.recorded != nil
}

// ReplayHead makes head, which RecordedHead returned for an earlier
// response, this response's head, as if the handler had set the same
// fields and called WriteHeader(status). length is the Content-Length
// it declares. The caller vouches that the fields are those it would
// set now and that the Date in head is this second's. It returns false,
// having done nothing, when the response has begun or is for a HEAD
// request; the handler then answers as usual.
func (w *writer) ReplayHead(head []byte, status int, length int64) bool {
	if w.sent || w.status != 0 || w.head || w.err != nil || len(w.header) > 0 || len(w.body) > 0 || status < 200 {
		return false
	}
	w.status = status
	w.length = length
	w.buf = append(w.buf[:0], head...)
	w.sent = true
	return true
}

func (w *writer) WriteHeader(code int) {
	if w.status != 0 || w.sent {
		return
	}
	if code < 100 || code > 999 {
		panic("fastlane: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 {
		// An interim response goes out ahead with the fields set so far,
		// as net/http sends it; 100 Continue is net/http's own business.
		if code != http.StatusContinue && code != http.StatusSwitchingProtocols {
			w.appendHead(code, nil, false)
		}
		return
	}
	w.status = code
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !gateway.BodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if !w.sent && w.record && len(w.body) == 0 && len(w.header["Content-Type"]) > 0 && declaredLength(w.header) >= 0 {
		// Nothing is left to learn from the body: the head is built
		// now, so that the handler can have it (RecordedHead).
		w.appendHead(w.status, nil, false)
		w.sent = true
	}
	if !w.sent {
		if n := declaredLength(w.header); n >= 0 && w.written+int64(len(p)) > n {
			return 0, http.ErrContentLength
		}
		w.written += int64(len(p))
		if len(w.body)+len(p) < directWrite {
			w.body = append(w.body, p...)
			return len(p), nil
		}
		// The body outgrows the buffer: the head goes out now.
		w.send(false, p)
		if w.err != nil {
			return 0, w.err
		}
		return len(p), nil
	}
	if w.length >= 0 && w.written+int64(len(p)) > w.length {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	w.write(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// fileBody is a body also kept in a file (see cache.BodyFilePeeker),
// which the lane sends with sendfile. Read gives the same bytes from
// memory, for when the file cannot be used.
type fileBody interface {
	io.Reader
	BodyFile() (f syscall.Conn, off, n int64)
}

// ReadFrom sends a fileBody with sendfile, without copying it through the
// process; anything else, a HEAD's body, or a response whose type must be
// sniffed from its first bytes goes through Write.
func (w *writer) ReadFrom(src io.Reader) (int64, error) {
	if fb, ok := src.(fileBody); ok && canSendFile && !w.head && w.err == nil {
		if n, sent, err := w.sendFile(fb); sent {
			return n, err
		}
	}
	return io.Copy(writeOnly{w}, src)
}

// writeOnly hides ReadFrom from io.Copy.
type writeOnly struct{ io.Writer }

// sendFile sends the head and fb's file. sent is false, with nothing
// written, when it cannot (the file has been closed: the body left
// memory; no Content-Type to send; a length that does not match).
func (w *writer) sendFile(fb fileBody) (n int64, sent bool, err error) {
	f, off, size := fb.BodyFile()
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.out || len(w.body) > 0 || w.written > 0 || !gateway.BodyAllowed(w.status) {
		return 0, false, nil
	}
	if w.sent {
		// A replayed head waits in buf.
		if w.length != size {
			return 0, false, nil
		}
	} else if len(w.header["Content-Type"]) == 0 || declaredLength(w.header) != size {
		return 0, false, nil
	}
	if _, ok := w.c.Conn.(syscall.Conn); !ok {
		return 0, false, nil // not a socket of the kernel's (a TLS connection, a pipe)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	// The file is held for the whole answer: closed meanwhile (its entry
	// left memory), its descriptor stays open until the answer is out.
	// Control holds a reference, not Read's lock: that lock would let one
	// answer at a time send a body that many connections are asking for
	// (sendfile at an explicit offset leaves the file's position alone).
	_ = rc.Control(func(fd uintptr) { // fails only on a closed file: sent stays false
		sent = true
		if !w.sent {
			w.appendHead(w.status, nil, false)
			w.sent = true
		}
		w.out = true
		n, err = sendFile(w.c.Conn, w.buf, int(fd), off, size)
		w.buf = w.buf[:0]
	})
	if !sent {
		return 0, false, nil // closed before anything was written
	}
	w.written += n
	if err != nil {
		w.err = err
	}
	return n, true, err
}

// send builds the head and writes it with the buffered body and p.
// done says the handler has finished, so the body's length is known.
func (w *writer) send(done bool, p []byte) {
	first := w.body
	if len(first) == 0 {
		first = p
	}
	w.appendHead(w.status, first, done)
	w.sent = true
	if !w.head {
		w.buf = append(w.buf, w.body...)
		w.write(p)
	}
}

// write sends buf and p, or copies p into buf while both are small: a
// body written in many small pieces goes out every 64 KiB, not held whole.
func (w *writer) write(p []byte) {
	if len(p) < directWrite && len(w.buf)+len(p) < 64<<10 {
		w.buf = append(w.buf, p...)
		return
	}
	w.out = true
	bufs := net.Buffers{w.buf, p}
	_, w.err = bufs.WriteTo(w.c.Conn)
	w.buf = w.buf[:0]
}

// finish completes the response and sends what is left of it.
func (w *writer) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent {
		w.send(true, nil)
	}
	if w.length >= 0 && w.written != w.length && !w.head {
		w.closeAfter = true // net/http closes too: the client saw a short body
	}
	if w.err == nil && len(w.buf) > 0 {
		w.out = true
		_, w.err = w.c.Conn.Write(w.buf)
		w.buf = w.buf[:0]
	}
	return w.err
}

// appendHead appends a status line and the fields to buf. first is the
// start of the body, for sniffing its type; done says the handler has
// finished, so that the length of an undeclared body is known.
func (w *writer) appendHead(code int, first []byte, done bool) {
	h := w.header
	// What net/http adds goes after the handler's fields, in its order.
	var date, length, ctype, connection string
	var dateSec int64
	if code >= 200 {
		if _, ok := h["Date"]; !ok {
			date, dateSec = httpDate()
		}
		w.length = declaredLength(h)
		if !gateway.BodyAllowed(code) {
			w.length = 0
		}
		if w.length < 0 && gateway.BodyAllowed(code) {
			switch {
			case done && (!w.head || w.written > 0):
				w.length = w.written
				length = strconv.FormatInt(w.written, 10)
			case !done:
				// Like net/http without chunking: the body ends when the
				// connection does.
				w.closeAfter = true
			}
		}
		if _, ok := h["Content-Type"]; !ok && gateway.BodyAllowed(code) && len(first) > 0 && len(h["Content-Encoding"]) == 0 {
			ctype = http.DetectContentType(first)
		}
		if w.closeAfter && len(h["Connection"]) == 0 {
			connection = "close"
		}
	}
	from := len(w.buf)
	b := append(w.buf, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	b = append(b, "\r\n"...)
	w.keys = w.keys[:0]
	for k := range h {
		w.keys = append(w.keys, k)
	}
	slices.Sort(w.keys)
	for _, k := range w.keys {
		if !httpguts.ValidHeaderFieldName(k) || suppressed(code, k) {
			continue // net/http drops them too
		}
		for _, v := range h[k] {
			b = appendField(b, k, v)
		}
	}
	if date != "" {
		b = appendField(b, "Date", date)
	}
	if length != "" {
		b = appendField(b, "Content-Length", length)
	}
	if ctype != "" {
		b = appendField(b, "Content-Type", ctype)
	}
	if connection != "" {
		b = appendField(b, "Connection", connection)
	}
	w.buf = append(b, "\r\n"...)
	if w.record && code >= 200 && length == "" && ctype == "" && connection == "" {
		w.recorded, w.recordedDate = slices.Clone(w.buf[from:]), -1
		if date != "" {
			w.recordedDate = dateSec
		}
	}
}

// suppressed reports whether net/http leaves field k out of a response
// with this status, which has no body (its suppressedHeaders).
func suppressed(code int, k string) bool {
	if code < 200 || gateway.BodyAllowed(code) {
		return false
	}
	return k == "Content-Length" || k == "Transfer-Encoding" || code == http.StatusNotModified && k == "Content-Type"
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = appendValue(b, v)
	return append(b, "\r\n"...)
}

// appendValue appends v with CR and LF made spaces and surrounding
// whitespace trimmed, as net/http writes field values (it replaces, then
// trims, so a CR or LF at either end goes too).
func appendValue(b []byte, v string) []byte {
	v = strings.Trim(v, " \t\r\n")
	if !strings.ContainsAny(v, "\r\n") {
		return append(b, v...)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// declaredLength is the Content-Length the handler set, -1 if none or
// not a number.
func declaredLength(h http.Header) int64 {
	v := h["Content-Length"]
	if len(v) != 1 {
		return -1
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// httpDate returns the current time in the Date format, formatted once a
// second, and the second (Unix time).
func httpDate() (string, int64) {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.text, sec
	}
	d := &dateText{sec: sec, text: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.text, sec
}

type dateText struct {
	sec  int64
	text string
}

var cachedDate atomic.Pointer[dateText]
