package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// hopByHop are the header fields meaningful only for one connection
// (RFC 9110 section 7.6.1); a proxy never forwards them.
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopByHop(name string) bool {
	for _, h := range hopByHop {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// removeHopByHop deletes hop-by-hop fields, including those the Connection
// field names.
func removeHopByHop(h http.Header) {
	for _, line := range h.Values("Connection") {
		for _, name := range strings.Split(line, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
}

// conditionalHeaders are the request fields that make a request
// conditional or partial. A cacheable fetch drops the client's: the cache
// needs the whole, current response, and answers the client's conditions
// itself.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"}

func isConditional(name string) bool {
	for _, h := range conditionalHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// cachegatePrefix starts the names of cachegate's own request headers,
// which are never sent upstream.
const cachegatePrefix = "X-Cachegate-"

// outgoing builds the request sent to the upstream from the client's.
func outgoing(ctx context.Context, r *http.Request, target *url.URL, method string, body []byte, cacheable bool) *http.Request {
	out := r.Clone(ctx)
	out.Method = method
	out.URL = target
	out.Host = ""
	out.RequestURI = ""
	out.Close = false
	removeHopByHop(out.Header)
	for name := range out.Header {
		// Case-insensitive: a header map built by hand may hold names
		// that are not canonical, and the token must never leave.
		if len(name) >= len(cachegatePrefix) && strings.EqualFold(name[:len(cachegatePrefix)], cachegatePrefix) {
			delete(out.Header, name)
		}
	}
	if cacheable {
		for _, name := range conditionalHeaders {
			out.Header.Del(name)
		}
		// Only codings the gateway can decode again for a client that
		// lacks them may end up in the cache.
		out.Header.Set("Accept-Encoding", normalizedAcceptEncoding(r.Header))
	}
	if body != nil {
		out.Body = nopCloser{strings.NewReader(string(body))}
		out.ContentLength = int64(len(body))
		out.GetBody = nil
	} else if method == http.MethodGet && r.Method == http.MethodHead {
		out.Body = http.NoBody
		out.ContentLength = 0
	}
	if out.ContentLength == 0 && out.Body != nil && out.Body != http.NoBody && r.ContentLength == 0 {
		out.Body = http.NoBody
	}
	// X-Forwarded-*: who asked, and how they reached us.
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := out.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", r.Host)
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	out.Header.Set("X-Forwarded-Proto", proto)
	if _, ok := out.Header["User-Agent"]; !ok {
		// Keep Go's default User-Agent out: an absent one stays absent.
		out.Header.Set("User-Agent", "")
	}
	return out
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// newTransport returns the transport of one upstream: a pool of keep-alive
// connections sized for a busy gateway, a bound on the wait for response
// headers, and no transparent decompression (bodies are stored and served
// as the upstream encoded them).
func newTransport(timeout time.Duration, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	if dial == nil {
		dial = (&net.Dialer{
			Timeout:   min(timeout, 10*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext
	}
	return &http.Transport{
		Proxy:                 nil, // never through another proxy: the upstream is reached directly
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// UpstreamError is an upstream exchange that failed: unreachable, timed
// out, or answered with something that is not HTTP.
type UpstreamError struct {
	Upstream string
	Timeout  bool
	// TransferEncoding is set when the upstream's response had a
	// Transfer-Encoding cachegate cannot read (see codingTransport): its
	// value.
	TransferEncoding string
	Err              error
}

func (e *UpstreamError) Error() string {
	if e.TransferEncoding != "" {
		return fmt.Sprintf("upstream %q answered with Transfer-Encoding: %s, which cachegate cannot read: "+
			"it reads chunked, and gzip or deflate (under chunked or ended by the connection) on a GET or HEAD, "+
			"not other transfer codings (RFC 9112 section 6.1)",
			e.Upstream, e.TransferEncoding)
	}
	if e.Timeout {
		return fmt.Sprintf("upstream %q timed out: %v", e.Upstream, e.Err)
	}
	return fmt.Sprintf("upstream %q failed: %v", e.Upstream, e.Err)
}

func (e *UpstreamError) Unwrap() error { return e.Err }

func upstreamError(name string, err error) *UpstreamError {
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
	return &UpstreamError{Upstream: name, Timeout: timeout, TransferEncoding: unreadableTransferEncoding(err), Err: err}
}

// unreadableTransferEncoding returns the Transfer-Encoding that made Go's
// HTTP/1 client refuse a response, or "". net/http reads only a lone
// "chunked" (transfer.go) and reports anything else in an unexported error,
// so its text is all there is to go by.
func unreadableTransferEncoding(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	for _, prefix := range []string{"unsupported transfer encoding: ", "too many transfer encodings "} {
		if i := strings.Index(msg, prefix); i >= 0 {
			rest := msg[i+len(prefix):]
			if v, err := strconv.QuotedPrefix(rest); err == nil {
				rest, _ = strconv.Unquote(v)
			}
			return rest
		}
	}
	return ""
}

// rewriteLocation maps a Location pointing into the upstream back onto the
// gateway's /fetch/<name>/ path, so clients that follow redirects stay
// behind the cache. Content-Location is left as the upstream sent it: it
// names the representation, not a place to go, and RFC 9111 section 3
// asks a cache to store and send header fields unchanged.
func rewriteLocation(h http.Header, base *url.URL, name string, requestURL *url.URL) {
	v := h.Get("Location")
	if v == "" {
		return
	}
	loc, err := requestURL.Parse(v)
	if err != nil || !strings.EqualFold(loc.Host, base.Host) || !strings.EqualFold(loc.Scheme, base.Scheme) {
		return
	}
	prefix := strings.TrimSuffix(base.EscapedPath(), "/")
	p := loc.EscapedPath()
	if !strings.HasPrefix(p, prefix+"/") && p != prefix {
		return
	}
	rewritten := "/fetch/" + name + "/" + strings.TrimPrefix(strings.TrimPrefix(p, prefix), "/")
	if loc.RawQuery != "" {
		rewritten += "?" + loc.RawQuery
	}
	if loc.Fragment != "" {
		rewritten += "#" + loc.EscapedFragment()
	}
	h.Set("Location", rewritten)
}
