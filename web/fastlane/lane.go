// Package fastlane answers cache hits on a connection itself and leaves
// every other request to an http.Server, on the same connection, one
// request at a time.
//
// net/http spends more on each request than a cache hit costs: a context,
// a background reader goroutine, two layers of buffered writers. For a
// gateway whose answers are mostly cache hits that is most of the work, so
// the lane sits between the listener and the server. It wraps each
// connection; when the server is between requests and reads the next one,
// the lane parses it first. For a plain GET it asks the gateway
// (Options.Lookup) whether the answer is decided already (a fresh entry
// held in memory); if so it writes that gateway.Answer, whose head the
// gateway renders as net/http would, and reads on. It is a byte pump: it
// writes nothing of its own. Anything else, including every request
// Lookup declines, is handed to the server byte for byte, exactly one
// request, and the lane stands aside until the server has answered it and
// is idle again (http.Server.ConnState tells it). A connection the lane
// cannot follow (a chunked request body, an upgrade, HTTP/1.0, a
// malformed head) is the server's for good.
//
// So the server keeps everything it does (limits, errors for malformed
// requests, Expect, hijacking, client-gone cancellation), and a request
// the lane answers gets the same bytes net/http would have written.
// Plain-text HTTP/1.1 only: the lane must see the bytes as sent.
//
// What the lane relies on in net/http beyond its documented API (so
// beyond the Go 1 compatibility promise), each with a test that fails
// loudly when a Go release changes it (internals_test.go):
//   - Between requests the server reads the next one through the
//     connection's Read only, and waits for four bytes of it before it
//     starts its header timer (conn.serve's Peek(4)).
//   - The server reports StateIdle through ConnState after an answer is
//     out and before it reads the next request, from the goroutine that
//     reads, so the lane's mode changes before that Read.
//   - While it answers a request the server reads ahead in the
//     background (to notice a client that has gone), and aborts that read
//     by setting a read deadline in the past.
//   - On Shutdown the server closes connections it considers idle, as a
//     connection in the lane is to it, by calling Close.
//   - An io.EOF from Read between requests makes the server close the
//     connection quietly, without an answer.
//   - The head net/http writes for a handler's fields (status line, sorted
//     fields, Date, sniffed Content-Type) is what gateway.Answer.Head
//     holds: gateway's TestAnswerHeadAsNetHTTP and FuzzAnswerHeadAsNetHTTP.
package fastlane

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// Options configure a lane.
type Options struct {
	// Prefix: only request targets that start with it are offered to
	// Lookup, e.g. "/fetch/".
	Prefix string
	// Lookup returns the answer to r, or false, and then the server
	// answers r. It must not wait for I/O (the lane answers from the
	// connection's goroutine, between requests) and must not keep r or
	// use r.Body. The lane calls the answer's Done once, before its last
	// bytes go out.
	Lookup func(r *http.Request) (gateway.Answer, bool)
	// ChunkWriteTimeout, when > 0, bounds the write of each
	// gateway.HitChunk of a larger body, as the gateway's WriteTimeout
	// bounds the writes of the answers net/http sends.
	ChunkWriteTimeout time.Duration
	// Log gets panics recovered from Lookup. Nil logs nothing.
	Log *slog.Logger
}

// Attach makes srv's connections from ln go through a lane and returns
// the listener srv must Serve on. It sets srv.ConnState (calling the one
// it had) and registers a shutdown hook, so it must be called before the
// server starts. The server's IdleTimeout, ReadHeaderTimeout, ReadTimeout
// and WriteTimeout apply to the requests the lane answers as net/http
// applies them.
func Attach(srv *http.Server, ln net.Listener, opt Options) *Listener {
	l := &lane{opt: opt, srv: srv}
	prev := srv.ConnState
	srv.ConnState = func(nc net.Conn, s http.ConnState) {
		if c, ok := nc.(*conn); ok {
			c.stateChanged(s)
		}
		if prev != nil {
			prev(nc, s)
		}
	}
	srv.RegisterOnShutdown(l.shutdown)
	return &Listener{Listener: ln, lane: l}
}

type lane struct {
	opt      Options
	srv      *http.Server
	closing  atomic.Bool  // the server is shutting down
	answered atomic.Int64 // requests the lane answered
	// answering counts the requests being answered now (Lookup and the
	// writes after it), for WaitAnswers.
	answering atomic.Int64

	mu    sync.Mutex
	conns map[*conn]struct{} // open connections
}

// shutdown ends the connections that wait in the lane for a request: to
// the server they look new or idle, and it would wait for them.
func (l *lane) shutdown() {
	l.closing.Store(true)
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		if c.mode.Load() == intercept {
			c.Conn.SetReadDeadline(aLongTimeAgo)
		}
	}
}

var aLongTimeAgo = time.Unix(1, 0)

func (l *lane) track(c *conn, open bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !open {
		delete(l.conns, c)
		return
	}
	if l.conns == nil {
		l.conns = make(map[*conn]struct{})
	}
	l.conns[c] = struct{}{}
}

// Listener is the listener Attach returns.
type Listener struct {
	net.Listener
	lane *lane
}

// Answered returns how many requests the lane has answered itself.
func (l *Listener) Answered() int64 { return l.lane.answered.Load() }

// WaitAnswers stops the lane from answering more requests and waits until
// the answers under way are written, or ctx is done. Call it after the
// server's Shutdown, which does not wait for them: to the server their
// connections look idle. Most take microseconds; a large body to a slow
// client lasts as long as its writes, each bounded by the server's
// WriteTimeout and Options.ChunkWriteTimeout.
func (l *Listener) WaitAnswers(ctx context.Context) error {
	l.lane.shutdown()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for l.lane.answering.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (l *Listener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: nc, lane: l.lane}
	l.lane.track(c, true)
	return c, nil
}
