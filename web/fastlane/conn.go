package fastlane

import (
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// The modes of a connection.
const (
	// intercept: the server is between requests; the lane reads the next.
	intercept int32 = iota
	// handing: the server reads the request the lane handed it; remaining
	// bytes of it are still to come.
	handing
	// holding: the server has the whole request and is answering it; the
	// lane keeps whatever the client sends next until the server is idle.
	holding
	// passing: the server has the connection for good.
	passing
)

// maxHeld bounds what a client may send ahead (pipelining) while the
// server answers a request; beyond it the lane stops reading until then.
const maxHeld = 1 << 20

type conn struct {
	net.Conn
	lane *lane

	mode      atomic.Int32
	remaining int64 // bytes of the handed request the server has yet to read

	// buf[start:end] was read from the client and not yet given out.
	buf        []byte
	start, end int
	readErr    error // a read error after bytes, returned when they are used

	// Read is only ever called by one goroutine at a time (net/http's
	// connReader guarantees it), so the fields above need no lock.

	p      parsed
	req    requestState
	out    []byte // the head (and a small body) of the answer being sent
	remote string
	// closeAfter: the connection must close after the answer being sent
	// (a write failed, or a panic cut it short).
	closeAfter bool

	mu           sync.Mutex
	busy         bool // answering a request: Close waits for the end of it
	closeReq     bool
	readDeadline time.Time     // as last set by the server
	deadlineSet  chan struct{} // signalled when it changes
}

// Read gives the server the bytes of the requests it answers, and answers
// the others itself in between.
func (c *conn) Read(p []byte) (int, error) {
	for {
		switch c.mode.Load() {
		case intercept:
			if err := c.intercept(); err != nil {
				return 0, err
			}
		case handing:
			if c.remaining == 0 {
				c.mode.Store(holding)
				continue
			}
			n, err := c.give(p[:min(int64(len(p)), c.remaining)])
			c.remaining -= int64(n)
			return n, err
		case holding:
			// The server reads ahead while it answers (to notice a client
			// that has gone). Tell it of errors and the end of the
			// connection, keep the data.
			if err := c.hold(); err != nil {
				return 0, err
			}
		default:
			return c.give(p)
		}
	}
}

// give reads into p from the buffer first, then from the connection.
func (c *conn) give(p []byte) (int, error) {
	if c.start < c.end {
		n := copy(p, c.buf[c.start:c.end])
		c.consume(n)
		return n, nil
	}
	if err := c.takeErr(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *conn) hold() error {
	if c.end-c.start >= maxHeld {
		return c.waitDeadline()
	}
	return c.fill()
}

// waitDeadline blocks until the read deadline passes (the server aborts
// its read ahead by setting one in the past) and returns the error a read
// would.
func (c *conn) waitDeadline() error {
	for {
		c.mu.Lock()
		if c.deadlineSet == nil {
			c.deadlineSet = make(chan struct{}, 1)
		}
		d, set := c.readDeadline, c.deadlineSet
		c.mu.Unlock()
		if d.IsZero() {
			<-set
			continue
		}
		wait := time.Until(d)
		if wait <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(wait)
		select {
		case <-set:
		case <-t.C:
		}
		t.Stop()
	}
}

func (c *conn) SetReadDeadline(t time.Time) error {
	err := c.Conn.SetReadDeadline(t)
	c.mu.Lock()
	c.readDeadline = t
	if c.deadlineSet != nil {
		select {
		case c.deadlineSet <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	return err
}

func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// CloseWrite lets the server half-close as on a bare TCP connection (it
// does so to make sure a client reads an error before the connection
// goes).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps the server's sendfile path: its writes go straight to
// the connection.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// fill reads more from the client into the buffer.
func (c *conn) fill() error {
	if err := c.takeErr(); err != nil {
		return err
	}
	if len(c.buf)-c.end < 2048 {
		if c.start > 0 && c.start >= len(c.buf)/2 {
			c.end = copy(c.buf, c.buf[c.start:c.end])
			c.start = 0
		} else {
			c.buf = append(c.buf[:c.end], make([]byte, max(4096, len(c.buf)))...)
			c.buf = c.buf[:cap(c.buf)]
		}
	}
	n, err := c.Conn.Read(c.buf[c.end:])
	c.end += n
	if n > 0 && err != nil {
		c.readErr = err
		return nil
	}
	return err
}

func (c *conn) takeErr() error {
	err := c.readErr
	c.readErr = nil
	return err
}

func (c *conn) consume(n int) {
	c.start += n
	if c.start == c.end {
		c.start, c.end = 0, 0
	}
}

// errClose ends a connection the lane has answered on and must close (a
// response of undeclared length, shutdown). The server sees it as the
// client going away and closes quietly.
var errClose = io.EOF

// intercept reads requests and answers those it can until one is for the
// server (it then switches mode and returns nil) or the connection ends.
func (c *conn) intercept() error {
	served := 0
	var dl deadlines
	for {
		v := needMore
		// Between requests the server waits for 4 bytes before it reads
		// a request (http.conn.serve); after answering, the lane too.
		if c.end-c.start >= 4 || (served == 0 && c.start < c.end) {
			v = scan(c.buf[c.start:c.end], &c.p)
		}
		switch v {
		case needMore:
			if c.lane.closing.Load() && c.start == c.end {
				return errClose
			}
			if served > 0 {
				// The server set its deadline for the request it expected;
				// for the ones after, the lane sets the server's.
				c.setReadDeadline(c.end-c.start, &dl)
			}
			if err := c.fill(); err != nil {
				// Part of a head, then the end: the server tells the client
				// what it makes of it; fewer than 4 bytes after an answer
				// end the connection without a word, as the server's wait
				// for them does.
				if c.start < c.end && (served == 0 || c.end-c.start >= 4) {
					c.readErr = err
					c.mode.Store(passing)
					return nil
				}
				return err
			}
			continue
		case passAll:
			c.mode.Store(passing)
			return nil
		case handOff:
			c.hand()
			return nil
		}
		// Counted before closing is checked, so that WaitAnswers, which
		// sets closing first, either sees this answer or it never starts.
		c.lane.answering.Add(1)
		if c.lane.closing.Load() {
			// Shutting down: the server closes connections it thinks idle,
			// as this one is to it, and takes no new requests on them.
			c.lane.answering.Add(-1)
			return errClose
		}
		ok := c.answer()
		c.lane.answering.Add(-1)
		if c.closeRequested() {
			// The server closed the connection while Serve ran: it has
			// forgotten it, so nothing more may be handed to it.
			return errClose
		}
		if !ok {
			c.hand()
			return nil
		}
		served++
		dl.headStart = time.Time{}
		if c.closeAfter {
			return errClose
		}
	}
}

// setReadDeadline applies the server's read timeouts between requests
// the lane answers, as net/http's connection loop does: IdleTimeout (or
// ReadTimeout when it is zero) until four bytes of a head have come (the
// server's Peek(4)), then ReadHeaderTimeout (or ReadTimeout) from there.
//
// The idle deadline is moved at most once a second (it costs a timer
// update), so it may fall up to a second early.
func (c *conn) setReadDeadline(buffered int, t *deadlines) {
	srv := c.lane.srv
	switch {
	case buffered >= 4 && t.headStart.IsZero():
		t.headStart = time.Now()
		t.idleSet = time.Time{}
		d := srv.ReadHeaderTimeout
		if d <= 0 {
			d = srv.ReadTimeout
		}
		if d > 0 {
			c.Conn.SetReadDeadline(t.headStart.Add(d))
		}
	case buffered == 0:
		now := time.Now()
		if !t.idleSet.IsZero() && now.Sub(t.idleSet) < time.Second {
			return
		}
		t.idleSet = now
		d := srv.IdleTimeout
		if d == 0 {
			d = srv.ReadTimeout
		}
		if d > 0 {
			c.Conn.SetReadDeadline(now.Add(d))
		} else {
			c.Conn.SetReadDeadline(time.Time{})
		}
	}
}

// deadlines is what the lane knows of the read deadline it set.
type deadlines struct {
	headStart time.Time // when the head being read began, if it has
	idleSet   time.Time // when the idle deadline was last set, if it is the one in force
}

// hand gives the request at the start of the buffer to the server.
func (c *conn) hand() {
	c.remaining = int64(c.p.n) + c.p.body
	c.mode.Store(handing)
}

// answer offers the request at the start of the buffer to Lookup and
// sends its answer. It returns false, having sent nothing, when Lookup
// declines it (or panics).
func (c *conn) answer() bool {
	b := c.buf[c.start:c.end]
	target := b[c.p.target[0]:c.p.target[1]]
	if len(target) < len(c.lane.opt.Prefix) || string(target[:len(c.lane.opt.Prefix)]) != c.lane.opt.Prefix {
		return false
	}
	if c.remote == "" {
		c.remote = c.Conn.RemoteAddr().String()
	}
	r, ok := c.p.request(b, c.remote, &c.req)
	if !ok {
		return false
	}
	c.setBusy(true)
	defer c.setBusy(false)
	a, ok := c.lookup(r)
	if !ok {
		return false
	}
	c.consume(c.p.n)
	// Counted before the last bytes go out, so that a client that has
	// read the answer can rely on the count.
	c.lane.answered.Add(1)
	if err := c.send(&a); err != nil {
		c.closeAfter = true
	}
	return true
}

// lookup asks Lookup for the answer to r and tells the gateway it is
// being sent. The gateway's Lookup and Done recover their own panics
// (gateway/recover.go); this guard is for any other Options.Lookup, since
// a panic here, outside net/http's handlers, would end the process. It
// declines r, which the server then answers: nothing has been sent yet.
func (c *conn) lookup(r *http.Request) (a gateway.Answer, ok bool) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if c.lane.opt.Log != nil {
			c.lane.opt.Log.Error("panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
		}
		ok = false
	}()
	if a, ok = c.lane.opt.Lookup(r); ok {
		a.Done(int64(len(a.Body)))
	}
	return a, ok
}

func (c *conn) setBusy(busy bool) {
	c.mu.Lock()
	c.busy = busy
	c.mu.Unlock()
}

// closeRequested reports whether Close was called while the lane was
// answering; it then closes the connection now.
func (c *conn) closeRequested() bool {
	c.mu.Lock()
	req := c.closeReq
	c.mu.Unlock()
	if req {
		c.Conn.Close()
	}
	return req
}

// Close closes the connection, or, while the lane is sending an answer
// (the server, shutting down, closes connections it thinks idle), right
// after it: a client never sees half an answer for that reason.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.busy {
		c.closeReq = true
		c.mu.Unlock()
		// A client that does not read must not hold the shutdown up.
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		return nil
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// stateChanged follows the server: when it is idle, the lane reads the
// next request; once it hijacks a connection or closes it, the lane
// stands aside.
func (c *conn) stateChanged(s http.ConnState) {
	switch s {
	case http.StateIdle:
		switch c.mode.Load() {
		case holding:
			c.mode.Store(intercept)
		case handing:
			if c.remaining == 0 {
				c.mode.Store(intercept)
			} else {
				c.mode.Store(passing) // should not happen: it read less than the request
			}
		}
	case http.StateHijacked, http.StateClosed:
		c.mode.Store(passing)
		c.lane.track(c, false)
	}
}
