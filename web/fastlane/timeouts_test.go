package fastlane

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// closeSignal is a listener whose connections say when the server closes
// them.
type closeSignal struct {
	net.Listener
	closed chan struct{}
}

type signalConn struct {
	net.Conn
	closed chan struct{}
}

func (c *signalConn) Close() error {
	select {
	case c.closed <- struct{}{}:
	default:
	}
	return c.Conn.Close()
}

func (l *closeSignal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &signalConn{Conn: c, closed: l.closed}, nil
}

// timeoutServer serves a big answer from net/http alone or from the
// lane, with the server's timeouts set by tune, and returns its address
// and a channel that says when it closes a connection.
func timeoutServer(t *testing.T, laned bool, body []byte, opt Options, tune func(*http.Server)) (string, chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cs := &closeSignal{Listener: ln, closed: make(chan struct{}, 1)}
	srv := &http.Server{ErrorLog: quietLog(), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	})}
	tune(srv)
	var l net.Listener = cs
	if laned {
		opt.Prefix = "/fetch/"
		opt.Lookup = func(r *http.Request) (gateway.Answer, bool) { return answerOf(body, "application/octet-stream"), true }
		l = Attach(srv, cs, opt)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), cs.closed
}

// A client that stops reading a large answer is cut off by the server's
// WriteTimeout, through the lane as through net/http alone, and by the
// lane's ChunkWriteTimeout; one that reads gets the answer whole.
func TestLaneHonoursWriteTimeouts(t *testing.T) {
	body := bytes.Repeat([]byte("w"), 64<<20) // more than loopback buffers hold
	for _, c := range []struct {
		name  string
		laned bool
		opt   Options
		tune  func(*http.Server)
	}{
		{"net/http WriteTimeout", false, Options{}, func(s *http.Server) { s.WriteTimeout = 300 * time.Millisecond }},
		{"lane WriteTimeout", true, Options{}, func(s *http.Server) { s.WriteTimeout = 300 * time.Millisecond }},
		{"lane ChunkWriteTimeout", true, Options{ChunkWriteTimeout: 300 * time.Millisecond}, func(s *http.Server) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, closed := timeoutServer(t, c.laned, body, c.opt, c.tune)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			io.WriteString(conn, "GET /fetch/big HTTP/1.1\r\nHost: h\r\n\r\n")
			select {
			case <-closed: // the write timed out: the server gave up on the client
			case <-time.After(20 * time.Second):
				t.Fatal("the server never cut off a client that does not read")
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, _ := io.Copy(io.Discard, conn)
			if got >= int64(len(body)) {
				t.Fatalf("read %d bytes after the cut: the whole answer", got)
			}
		})
	}
	// A client that reads is never cut off by the per-chunk deadline.
	addr, _ := timeoutServer(t, true, body, Options{ChunkWriteTimeout: 300 * time.Millisecond}, func(s *http.Server) {})
	got := exchange(t, addr, []byte("GET /fetch/big HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n"), 0)
	if !bytes.HasSuffix(got, body[:1<<20]) || len(got) < len(body) {
		t.Fatalf("a reading client got %d bytes of %d", len(got), len(body))
	}
}

// ReadTimeout stands in for a zero ReadHeaderTimeout and IdleTimeout
// between the requests the lane answers, as in net/http.
func TestLaneHonoursReadTimeout(t *testing.T) {
	addr, _ := newServer(t, http.HandlerFunc(echo), true, func(s *http.Server) {
		s.ReadHeaderTimeout, s.IdleTimeout, s.ReadTimeout = 0, 0, 200*time.Millisecond
	})
	for name, next := range map[string]string{"idle": "", "slow head": "GET /fetch/a HTTP/1.1\r\nHo"} {
		t.Run(name, func(t *testing.T) {
			c, br := dialLaned(t, addr)
			roundTrip(t, c, br, get)
			roundTrip(t, c, br, get)
			io.WriteString(c, next)
			if _, err := io.ReadAll(br); err != nil { // net/http may say 408 first
				t.Fatalf("connection not closed by ReadTimeout: %v", err)
			}
		})
	}
}
