package gateway

import (
	"bufio"
	"compress/gzip"
	"compress/zlib"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// codingTransport reads the responses that Go's HTTP/1 client refuses for
// their Transfer-Encoding: net/http accepts a lone "chunked" and nothing
// else, while RFC 9112 section 6.1 lets a server apply gzip or deflate
// beneath chunked ("gzip, chunked") or instead of it, the body then ending
// with the connection. When the refused codings are ones cachegate can
// decode and the request can be sent again (a GET or HEAD without a body),
// it is sent once more on a connection of its own, read here and handed on
// decoded, as if the upstream had sent it plainly. Any other coding is left
// to fail: its bytes could not be turned into the representation.
type codingTransport struct {
	base *http.Transport
}

func (t *codingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil {
		return resp, nil
	}
	te := unreadableTransferEncoding(err)
	if _, ok := decodableCodings(te); te == "" || !ok || (req.Method != http.MethodGet && req.Method != http.MethodHead) ||
		(req.Body != nil && req.Body != http.NoBody) {
		return nil, err
	}
	return t.roundTripDecoding(req)
}

// CloseIdleConnections passes http.Client's call on to the transport.
func (t *codingTransport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// decodableCodings splits a Transfer-Encoding into its codings, lower
// case, and reports whether cachegate can undo every one: gzip (x-gzip),
// deflate, and chunked once, as the last (RFC 9112 section 6.1).
func decodableCodings(te string) ([]string, bool) {
	var codings []string
	for _, c := range strings.Split(te, ",") {
		c = strings.ToLower(strings.TrimSpace(c))
		switch c {
		case "":
			continue
		case "gzip", "x-gzip", "deflate", "chunked":
		default:
			return nil, false
		}
		codings = append(codings, c)
	}
	for i, c := range codings {
		if c == "chunked" && i != len(codings)-1 {
			return nil, false
		}
	}
	return codings, len(codings) > 0
}

// roundTripDecoding sends req over a connection of its own, asking the
// upstream to close it, and reads the response, undoing its codings.
func (t *codingTransport) roundTripDecoding(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	conn, err := t.dial(ctx, req)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*http.Response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	out := req.Clone(ctx)
	out.Close = true
	if err := out.Write(conn); err != nil {
		return fail(err)
	}
	if t.base.ResponseHeaderTimeout > 0 {
		conn.SetReadDeadline(time.Now().Add(t.base.ResponseHeaderTimeout))
	}
	// The head is bounded as net/http bounds it; the body by the timeouts.
	limited := &headLimit{r: conn, left: maxResponseHead}
	br := bufio.NewReader(limited)
	resp, err := readResponseHead(br, req)
	if err != nil {
		return fail(err)
	}
	limited.left = -1
	conn.SetReadDeadline(time.Time{})
	te := strings.Join(resp.Header.Values("Transfer-Encoding"), ", ")
	codings, ok := decodableCodings(te)
	if te != "" && !ok {
		// Worded as net/http words it, for upstreamError.
		return fail(fmt.Errorf("unsupported transfer encoding: %q", te))
	}
	length := resp.Header.Get("Content-Length")
	resp.Header.Del("Transfer-Encoding")
	resp.Header.Del("Content-Length")
	closer := &connCloser{conn: conn, stop: stop}
	if req.Method == http.MethodHead || !BodyAllowed(resp.StatusCode) {
		closer.Close()
		resp.Body = http.NoBody
		resp.ContentLength = 0
		return resp, nil
	}
	// Content-Length means nothing beside Transfer-Encoding (RFC 9112
	// section 6.3); without chunked last, the body ends with the connection.
	var body io.Reader = br
	if te == "" && length != "" {
		n, err := strconv.ParseInt(length, 10, 64)
		if err != nil || n < 0 {
			closer.Close()
			return nil, fmt.Errorf("malformed Content-Length %q", length)
		}
		body, resp.ContentLength = io.LimitReader(br, n), n
	}
	if len(codings) > 0 && codings[len(codings)-1] == "chunked" {
		body = httputil.NewChunkedReader(br)
		codings = codings[:len(codings)-1]
	}
	for i := len(codings) - 1; i >= 0; i-- {
		switch codings[i] {
		case "gzip", "x-gzip":
			zr, err := gzip.NewReader(body)
			if err != nil {
				closer.Close()
				return nil, fmt.Errorf("reading the gzip transfer coding: %w", err)
			}
			body = zr
		case "deflate":
			zr, err := zlib.NewReader(body)
			if err != nil {
				closer.Close()
				return nil, fmt.Errorf("reading the deflate transfer coding: %w", err)
			}
			body = zr
		}
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{body, closer}
	return resp, nil
}

// dial opens a connection to req's host the way the transport would, over
// TLS for https, speaking HTTP/1.1 (the codings exist only there).
func (t *codingTransport) dial(ctx context.Context, req *http.Request) (net.Conn, error) {
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
	}
	dial := t.base.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil || req.URL.Scheme != "https" {
		return conn, err
	}
	cfg := &tls.Config{}
	if t.base.TLSClientConfig != nil {
		cfg = t.base.TLSClientConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// readResponseHead reads a status line and header, skipping 1xx interim
// responses, and leaves br at the start of the body.
func readResponseHead(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return nil, err
		}
		proto, status, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(proto, "HTTP/1.") {
			return nil, fmt.Errorf("malformed HTTP response %q", line)
		}
		codeText, _, _ := strings.Cut(status, " ")
		code, err := strconv.Atoi(codeText)
		if err != nil || len(codeText) != 3 {
			return nil, fmt.Errorf("malformed HTTP status code %q", codeText)
		}
		mh, err := tp.ReadMIMEHeader()
		if err != nil {
			return nil, err
		}
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			continue
		}
		h := http.Header(mh)
		major, minor, _ := http.ParseHTTPVersion(proto)
		return &http.Response{
			Status: status, StatusCode: code, Proto: proto, ProtoMajor: major, ProtoMinor: minor,
			Header: h, ContentLength: -1, Close: true, Request: req,
		}, nil
	}
}

// maxResponseHead is net/http's default bound on a response head.
const maxResponseHead = 1 << 20

// headLimit fails reads past left bytes; left < 0 lifts the bound.
type headLimit struct {
	r    io.Reader
	left int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left < 0 {
		return l.r.Read(p)
	}
	if l.left == 0 {
		return 0, errors.New("the upstream's response head is larger than 1 MiB")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// connCloser closes the connection of a decoded body once.
type connCloser struct {
	conn net.Conn
	stop func() bool
}

func (c *connCloser) Close() error {
	c.stop()
	err := c.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
