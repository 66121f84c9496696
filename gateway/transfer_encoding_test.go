package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/web/fastlane"
)

// rawEnv is a gateway whose upstream "up" answers GET /te with response,
// written to the socket as it is.
func rawEnv(t *testing.T, response string, mode string) *env {
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
	srv := httptest.NewUnstartedServer(g)
	lane := fastlane.Attach(srv.Config, srv.Listener, fastlane.Options{Prefix: "/fetch/", Serve: g.ServeHit})
	srv.Listener = lane
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		backend.Close()
	})
	return &env{t: t, gw: g, srv: srv, backend: backend, clock: c, lane: lane}
}

// An upstream response whose Transfer-Encoding is anything but a lone
// chunked cannot be read by Go's HTTP client (net/http accepts no other
// transfer coding, RFC 9112 section 6.1 notwithstanding): the gateway
// answers 502 with a JSON error that says so, and stores nothing.
func TestUpstreamTransferEncodingOtherThanChunked(t *testing.T) {
	for _, c := range []struct{ name, te, body string }{
		{"gzip then chunked", "gzip, chunked", "5\r\nhello\r\n0\r\n\r\n"},
		{"an unknown coding, read until close", "x-cachegate-test", "hello"},
		{"chunked twice", "chunked, chunked", "5\r\nhello\r\n0\r\n\r\n"},
	} {
		for _, mode := range []string{"requests-cache", "rfc9111"} {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				resp := "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: " + c.te + "\r\nConnection: close\r\n\r\n" + c.body
				e := rawEnv(t, resp, mode)
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
			})
		}
	}
	// A lone chunked is read as ever.
	e := rawEnv(t, "HTTP/1.1 200 OK\r\nCache-Control: max-age=3600\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "rfc9111")
	if r := e.get("/te", "MISS"); r.body != "hello" {
		t.Errorf("chunked body %q, want hello", r.body)
	}
	if r := e.get("/te", "HIT"); r.body != "hello" {
		t.Errorf("chunked body from the cache %q, want hello", r.body)
	}
}
