package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// rawEnv is a gateway whose upstream "up" answers GET /te with response,
// written to the socket as it is.
func rawEnv(t *testing.T, response string, mode string) (*env, *rawUpstream) {
	t.Helper()
	raw := startRaw(t, map[string]rawHandler{"/te": func(c net.Conn, _ *bufio.Reader, _ int) {
		io.WriteString(c, response)
	}})
	u, _ := url.Parse(raw.URL())
	p := policy()
	if mode == "rfc9111" {
		p = policy(rfc)
	}
	backend := testBackend(t)
	c := newClock()
	g, err := gateway.New(gateway.Options{Now: c.Now}, gateway.Upstream{
		Name: "up", URL: u, Policy: p, Backend: backend, BackendName: "default", Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, lane := serveThroughLane(t, g, backend)
	return &env{t: t, gw: g, srv: srv, backend: backend, clock: c, lane: lane}, raw
}

// Transfer codings Go's HTTP client refuses but cachegate can undo (gzip
// or deflate, under chunked or ended by the connection, RFC 9112 section
// 6.1) are read on a second request of the upstream's own, decoded, stored
// and served plainly; the client never sees the Transfer-Encoding.
func TestUpstreamTransferEncodingDecoded(t *testing.T) {
	const body = "a body the upstream transfer-coded"
	var gz, zl bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(body))
	zw.Close()
	lw := zlib.NewWriter(&zl)
	lw.Write([]byte(body))
	lw.Close()
	chunked := func(b []byte) string { return fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(b), b) }
	for _, c := range []struct{ name, te, body string }{
		{"gzip then chunked", "gzip, chunked", chunked(gz.Bytes())},
		{"deflate then chunked", "deflate, chunked", chunked(zl.Bytes())},
		{"gzip, ended by the connection", "gzip", gz.String()},
		{"x-gzip in upper case, with a Content-Length to ignore", "X-GZIP", gz.String()},
	} {
		for _, mode := range []string{"requests-cache", "rfc9111"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				resp := "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nContent-Type: text/plain\r\nTransfer-Encoding: " + c.te + "\r\n"
				if strings.Contains(c.name, "Content-Length") {
					resp += "Content-Length: 3\r\n"
				}
				resp += "Connection: close\r\n\r\n" + c.body
				e, raw := rawEnv(t, resp, mode)
				for _, want := range []string{"MISS", "HIT"} {
					r := e.get("/te", want)
					if r.status != http.StatusOK || r.body != body {
						t.Errorf("%s: status %d body %q, want 200 %q", want, r.status, r.body, body)
					}
					if te := r.header.Get("Transfer-Encoding"); te != "" {
						t.Errorf("%s: the client got Transfer-Encoding %q", want, te)
					}
				}
				// Refused once by net/http, then read here.
				if n := raw.callsOf("/te"); n != 2 {
					t.Errorf("the upstream saw %d requests, want 2", n)
				}
			})
		}
	}
}

// A transfer coding cachegate cannot undo, or chunked applied twice, gets
// a 502 with a JSON error that names it; the upstream is not asked again
// and nothing is stored.
func TestUpstreamTransferEncodingUnreadable(t *testing.T) {
	for _, c := range []struct{ name, te, body string }{
		{"an unknown coding, read until close", "x-cachegate-test", "hello"},
		{"an unknown coding under chunked", "br, chunked", "5\r\nhello\r\n0\r\n\r\n"},
		{"chunked twice", "chunked, chunked", "5\r\nhello\r\n0\r\n\r\n"},
		{"chunked before gzip", "chunked, gzip", "5\r\nhello\r\n0\r\n\r\n"},
	} {
		for _, mode := range []string{"requests-cache", "rfc9111"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				resp := "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: " + c.te + "\r\nConnection: close\r\n\r\n" + c.body
				e, raw := rawEnv(t, resp, mode)
				r := e.do(http.MethodGet, "/te")
				if r.status != http.StatusBadGateway {
					t.Fatalf("status %d, want 502 (body %q)", r.status, r.body)
				}
				var got struct{ Error, Code, Upstream string }
				if err := json.Unmarshal([]byte(r.body), &got); err != nil {
					t.Fatalf("body %q is not a JSON error: %v", r.body, err)
				}
				if got.Code != "upstream_transfer_encoding" || !strings.Contains(got.Error, "Transfer-Encoding") || !strings.Contains(got.Error, c.te) {
					t.Errorf("error %+v, want code upstream_transfer_encoding and a message naming Transfer-Encoding %q", got, c.te)
				}
				if n := len(e.entries()); n != 0 {
					t.Errorf("%d entries stored, want none", n)
				}
				if n := raw.callsOf("/te"); n != 1 {
					t.Errorf("the upstream saw %d requests, want 1", n)
				}
			})
		}
	}
	// A lone chunked is read as ever.
	e, _ := rawEnv(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "rfc9111")
	if r := e.get("/te", "MISS"); r.body != "hello" {
		t.Errorf("chunked body %q, want hello", r.body)
	}
	if r := e.get("/te", "HIT"); r.body != "hello" {
		t.Errorf("chunked body from the cache %q, want hello", r.body)
	}
}

// callsOf counts the requests the upstream got for path.
func (u *rawUpstream) callsOf(path string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[path]
}

// The second request's response head is bounded as net/http bounds one:
// an upstream that answers it with endless header lines gets a 502.
func TestUpstreamTransferEncodingRetryHeadBounded(t *testing.T) {
	raw := startRaw(t, map[string]rawHandler{"/te": func(c net.Conn, _ *bufio.Reader, call int) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: gzip, chunked\r\n")
		if call > 0 {
			line := "X-Filler: " + strings.Repeat("x", 1000) + "\r\n"
			for range 2000 {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		}
		io.WriteString(c, "Connection: close\r\n\r\n0\r\n\r\n")
	}})
	u, _ := url.Parse(raw.URL())
	backend := testBackend(t)
	g, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "up", URL: u, Policy: policy(rfc), Backend: backend, BackendName: "default", Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		backend.Close()
	})
	e := &env{t: t, gw: g, srv: srv, backend: backend, clock: newClock()}
	if r := e.do(http.MethodGet, "/te"); r.status != http.StatusBadGateway || !strings.Contains(r.body, "1 MiB") {
		t.Errorf("status %d body %q, want 502 naming the head bound", r.status, r.body)
	}
	if n := raw.callsOf("/te"); n != 2 {
		t.Errorf("the upstream saw %d requests, want 2", n)
	}
}
