package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The defaults of the upstream timeouts beyond the wait for headers.
const (
	// DefaultReadTimeout ends an upstream body that sends no byte for
	// this long.
	DefaultReadTimeout = 30 * time.Second
	// DefaultTotalTimeout bounds a whole upstream exchange, headers and
	// body.
	DefaultTotalTimeout = 5 * time.Minute
)

// timeoutTransport bounds every exchange with an upstream beyond the
// transport's wait for headers: an upstream that stalls in the middle of a
// body, or trickles one forever, would otherwise hold the request that
// reads it, every request collapsed onto it, and the connection. It sits
// under the upstream's http.Client, so the gateway's fetches, its
// pass-through and the admin side's revalidation are all bounded alike.
type timeoutTransport struct {
	base http.RoundTripper
	// read ends a body that sends nothing for this long; total ends the
	// exchange this long after it began, whatever it is doing.
	read, total time.Duration
}

// errReadTimeout is what a body read returns once the upstream has sent
// nothing for read_timeout.
var errReadTimeout = timeoutError("no byte from the upstream within read_timeout")

// errTotalTimeout is what a body read returns once the exchange has run
// for total_timeout.
var errTotalTimeout = timeoutError("the upstream exchange ran past total_timeout")

// timeoutError is a net.Error whose Timeout is true, so that upstreamError
// reports it as a timeout (504 upstream_timeout).
type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return false }

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	total := time.AfterFunc(t.total, func() { cancel(errTotalTimeout) })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		total.Stop()
		if context.Cause(ctx) == errTotalTimeout {
			err = errTotalTimeout
		}
		cancel(nil)
		return nil, err
	}
	b := &timedBody{body: resp.Body, ctx: ctx, cancel: cancel, total: total, read: t.read}
	b.idle = time.AfterFunc(t.read, func() {
		b.idled.Store(true)
		cancel(errReadTimeout)
	})
	resp.Body = b
	return resp, nil
}

// timedBody is an upstream body under both timeouts: each read moves the
// idle deadline on; Close (or the end of the body) stops the timers and
// releases the exchange's context.
type timedBody struct {
	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	total  *time.Timer
	idle   *time.Timer
	read   time.Duration
	idled  atomic.Bool
	once   sync.Once
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			b.stop()
			return n, err
		}
		// A read cut by one of our timers says so, not "context
		// canceled".
		switch cause := context.Cause(b.ctx); {
		case b.idled.Load() || cause == errReadTimeout:
			err = errReadTimeout
		case cause == errTotalTimeout:
			err = errTotalTimeout
		}
		return n, err
	}
	// A byte arrived: the upstream has read_timeout again for the next.
	// Reset on a timer that has fired does not undo the cancel.
	b.idle.Reset(b.read)
	return n, nil
}

func (b *timedBody) Close() error {
	b.stop()
	err := b.body.Close()
	b.cancel(nil)
	return err
}

func (b *timedBody) stop() {
	b.once.Do(func() {
		b.idle.Stop()
		b.total.Stop()
	})
}

// CloseIdleConnections passes http.Client's call on to the transport.
func (t *timeoutTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
