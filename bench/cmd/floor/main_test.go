package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/cachegate/cachegate/bench/upstream"
)

// startFloor serves on a loopback port until the test ends.
func startFloor(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	return ln.Addr().String()
}

// TestFloorAnswersAsTheUpstream checks that net/http's client reads the
// floor's answers, that they carry the upstream's bytes, and that pipelined
// requests on one connection are answered in order.
func TestFloorAnswersAsTheUpstream(t *testing.T) {
	addr := startFloor(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Three requests in one write: a 1 KiB body with a query, a 100 KiB one, an unknown path.
	reqs := "GET /bytes/1k?n=7 HTTP/1.1\r\nHost: x\r\n\r\nGET /bytes/100k HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
	if _, err := io.WriteString(c, reqs); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for _, want := range []struct {
		status int
		body   []byte
	}{
		{200, upstream.Pattern(1 << 10)},
		{200, upstream.Pattern(100 << 10)},
		{404, []byte("not found\n")},
	} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != want.status || !bytes.Equal(body, want.body) {
			t.Fatalf("status %d, %d bytes; want %d, %d bytes", resp.StatusCode, len(body), want.status, len(want.body))
		}
		if resp.Header.Get("Date") == "" {
			t.Fatal("answer without Date")
		}
	}
}

// TestFloorClosesWhenAsked checks Connection: close and an over-long request.
func TestFloorClosesWhenAsked(t *testing.T) {
	addr := startFloor(t)
	for name, req := range map[string]string{
		"connection close": "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"too long":         "GET /healthz HTTP/1.1\r\nX-Long: " + string(bytes.Repeat([]byte("a"), maxRequest)) + "\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second)) // a floor that never closes fails, not hangs
		io.WriteString(c, req)
		// ReadAll returns once the floor closes: at EOF, or with a reset when
		// it closed with the client's bytes unread (the over-long request).
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("%s: %v", name, err)
		}
		ok := bytes.HasPrefix(got, []byte("HTTP/1.1 200 OK\r\n"))
		if wantAnswer := name == "connection close"; ok != wantAnswer {
			t.Fatalf("%s: answered %v (%q), want %v", name, ok, got, wantAnswer)
		}
	}
}

func TestWantsClose(t *testing.T) {
	for req, want := range map[string]bool{
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: close":      true,
		"GET / HTTP/1.1\r\nconnection:Close\r\nHost: x":       true,
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive": false,
		"GET /Connection: close HTTP/1.1\r\nHost: x":          false,
		"GET / HTTP/1.1\r\nX-Note: Connection: close":         false,
	} {
		if got := wantsClose([]byte(req)); got != want {
			t.Errorf("wantsClose(%q) = %v, want %v", req, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { wantsClose([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive")) }); n != 0 {
		t.Errorf("wantsClose allocates %v times per request", n)
	}
}
