package fastlane

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// These tests pin down the net/http behaviour beyond its documented API
// that the lane relies on (the list is in the package comment), on
// net/http alone: a Go release that changes one fails here, by name.

// recConn records what the server does with a connection, in order.
type recConn struct {
	net.Conn
	mu      sync.Mutex
	events  []string // "read", "write", "idle", "header-deadline", "idle-deadline", "past-deadline", "close"
	read    int      // bytes the server has read
	changed chan struct{}
}

func (c *recConn) log(ev string) {
	c.mu.Lock()
	c.events = append(c.events, ev)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *recConn) Read(p []byte) (int, error) {
	c.log("read")
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read += n
	c.mu.Unlock()
	c.log("") // wakes waiters on the byte count
	return n, err
}

func (c *recConn) Write(p []byte) (int, error) {
	c.log("write")
	return c.Conn.Write(p)
}

func (c *recConn) Close() error {
	c.log("close")
	return c.Conn.Close()
}

// The tests' header timeout and idle timeout are far apart, so that a
// deadline tells which one the server set.
const (
	testHeaderTimeout = time.Hour
	testIdleTimeout   = 10 * time.Hour
)

func (c *recConn) SetReadDeadline(t time.Time) error {
	switch d := time.Until(t); {
	case t.IsZero():
	case d < 0:
		c.log("past-deadline")
	case d <= testHeaderTimeout:
		c.log("header-deadline")
	default:
		c.log("idle-deadline")
	}
	return c.Conn.SetReadDeadline(t)
}

// waitFor blocks until cond holds over the recorded state.
func (c *recConn) waitFor(t *testing.T, what string, cond func(events []string, read int) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		ok := cond(c.events, c.read)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-timeout:
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("waiting for %s; events %v, %d bytes read", what, c.events, c.read)
		}
	}
}

func (c *recConn) since(i int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, ev := range c.events[i:] {
		if ev != "" {
			out = append(out, ev)
		}
	}
	return out
}

func (c *recConn) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// recListener hands out recConns, one at a time, on conns.
type recListener struct {
	net.Listener
	conns chan *recConn
}

func (l *recListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recConn{Conn: c, changed: make(chan struct{}, 1)}
	l.conns <- rc
	return rc, nil
}

// recordedServer starts a plain net/http server with h over a recListener
// and returns a connection to it and the server's side of it.
func recordedServer(t *testing.T, h http.Handler) (*http.Server, net.Conn, *bufio.Reader, *recConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recListener{Listener: ln, conns: make(chan *recConn, 1)}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: testHeaderTimeout, IdleTimeout: testIdleTimeout, ErrorLog: quietLog()}
	srv.ConnState = func(nc net.Conn, s http.ConnState) {
		if rc, ok := nc.(*recConn); ok && s == http.StateIdle {
			rc.log("idle")
		}
	}
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })
	c, br := dialLaned(t, ln.Addr().String())
	return srv, c, br, <-rl.conns
}

const plainGet = "GET /x HTTP/1.1\r\nHost: h\r\n\r\n"

func indexOf(events []string, ev string) int {
	for i, e := range events {
		if e == ev {
			return i
		}
	}
	return -1
}

// Between requests the server reads through Read only and starts its
// header timer only once four bytes of the next head have come (its
// Peek(4)); until then the idle timeout is the one in force.
func TestNetHTTPWaitsForFourBytesBeforeTheHeaderTimer(t *testing.T) {
	_, c, br, rc := recordedServer(t, http.HandlerFunc(echo))
	roundTrip(t, c, br, plainGet)
	rc.waitFor(t, "the idle deadline", func(ev []string, _ int) bool { return indexOf(ev, "idle-deadline") >= 0 })
	from := rc.mark()
	first := len(plainGet)
	io.WriteString(c, "GET")
	rc.waitFor(t, "a read after three bytes", func(ev []string, read int) bool {
		return read == first+3 && ev[len(ev)-1] == "read"
	})
	if evs := rc.since(from); indexOf(evs, "header-deadline") >= 0 {
		t.Fatalf("with three bytes of the next head: %v, want no header deadline", evs)
	}
	roundTrip(t, c, br, " /x HTTP/1.1\r\nHost: h\r\n\r\n")
	if evs := rc.since(from); indexOf(evs, "header-deadline") < 0 {
		t.Fatalf("no header deadline for the next request: %v", evs)
	}
}

// The server reports StateIdle after an answer is out and before it sets
// the idle deadline and reads the next request under it.
func TestNetHTTPReportsIdleBeforeReadingTheNextRequest(t *testing.T) {
	_, c, br, rc := recordedServer(t, http.HandlerFunc(echo))
	from := rc.mark()
	roundTrip(t, c, br, plainGet)
	rc.waitFor(t, "the read for the next request", func(ev []string, read int) bool {
		i := indexOf(ev[from:], "idle-deadline")
		return i >= 0 && indexOf(ev[from+i:], "read") >= 0
	})
	evs := rc.since(from)
	write, idle, deadline := indexOf(evs, "write"), indexOf(evs, "idle"), indexOf(evs, "idle-deadline")
	if write < 0 || idle < write || deadline < idle || indexOf(evs[deadline:], "read") < 0 {
		t.Fatalf("after the answer: %v, want write, then idle, then the idle deadline and a read", evs)
	}
}

// While a handler runs, the server reads ahead in the background and, when
// the handler is done, aborts that read with a read deadline in the past.
func TestNetHTTPAbortsItsBackgroundReadWithAPastDeadline(t *testing.T) {
	var rc *recConn
	ready := make(chan *recConn, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := <-ready
		c.waitFor(t, "the background read", func(ev []string, read int) bool {
			return ev[len(ev)-1] == "read" && read == len(plainGet)
		})
		io.WriteString(w, "done")
	})
	_, c, br, rc := recordedServer(t, h)
	ready <- rc
	from := rc.mark()
	roundTrip(t, c, br, plainGet)
	if evs := rc.since(from); indexOf(evs, "past-deadline") < 0 {
		t.Fatalf("the background read was not aborted by a past deadline: %v", evs)
	}
}

// On Shutdown the server closes a connection it considers idle by calling
// its Close, at once.
func TestNetHTTPClosesIdleConnectionsOnShutdown(t *testing.T) {
	srv, c, br, rc := recordedServer(t, http.HandlerFunc(echo))
	roundTrip(t, c, br, plainGet)
	rc.waitFor(t, "idle", func(ev []string, _ int) bool { return indexOf(ev, "idle") >= 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	rc.waitFor(t, "close", func(ev []string, _ int) bool { return indexOf(ev, "close") >= 0 })
}

// An io.EOF from Read between requests makes the server close the
// connection without writing anything.
func TestNetHTTPClosesQuietlyOnEOFBetweenRequests(t *testing.T) {
	_, c, br, rc := recordedServer(t, http.HandlerFunc(echo))
	roundTrip(t, c, br, plainGet)
	rc.waitFor(t, "the idle deadline", func(ev []string, _ int) bool { return indexOf(ev, "idle-deadline") >= 0 })
	from := rc.mark()
	c.(*net.TCPConn).CloseWrite() // the server's next Read returns io.EOF
	rc.waitFor(t, "close", func(ev []string, _ int) bool { return indexOf(ev[from:], "close") >= 0 })
	if evs := rc.since(from); indexOf(evs, "write") >= 0 {
		t.Fatalf("the server wrote after an EOF between requests: %v", evs)
	}
}
