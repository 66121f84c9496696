package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAppendGet(t *testing.T) {
	got := string(appendGet(nil, "/fetch/bench/slow?ms=100&id=x", "127.0.0.1:8080"))
	want := "GET /fetch/bench/slow?ms=100&id=x HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
	if got != want {
		t.Fatalf("appendGet = %q, want %q", got, want)
	}
}

// Answers as nginx, Varnish and net/http send them, one after the other on
// one connection: each must be read to its end and no further.
func TestReadResponseSequence(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n" +
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Cache: MISS\r\n\r\n" +
		"3;ext=1\r\nsl\n\r\n2\r\now\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n" +
		"HTTP/1.1 200 OK\nContent-Length: 5\n\nslow\n" + // bare LF
		"HTTP/1.1 503 Service Unavailable\r\ncontent-length:  4 \r\nConnection: keep-alive, Close\r\n\r\nbusy" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n" // chunked wins
	br := bufio.NewReader(strings.NewReader(stream))
	want := []rawResponse{
		{status: 200, body: 3},
		{status: 200, body: 5, chunked: true},
		{status: 204},
		{status: 200, body: 5},
		{status: 503, body: 4, close: true},
		{status: 200, body: 1, chunked: true},
	}
	for i, w := range want {
		got, err := readResponse(br)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		if got != w {
			t.Fatalf("answer %d = %+v, want %+v", i+1, got, w)
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("bytes left after the last answer (err %v)", err)
	}
}

func TestReadResponseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no length":           "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nslow\n",
		"bad status line":     "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
		"not HTTP":            "SSH-2.0-OpenSSH_9.6\r\n",
		"interim":             "HTTP/1.1 100 Continue\r\n\r\n",
		"bad length":          "HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\nabc",
		"two lengths":         "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"other coding":        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"short body":          "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"bad chunk size":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"chunk without CRLF":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
		"unfinished trailer":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\r\n",
		"bad header line":     "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
		"headers cut short":   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n",
		"header line too big": "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n",
	} {
		if r, err := readResponse(bufio.NewReaderSize(strings.NewReader(in), 4096)); err == nil {
			t.Errorf("%s: readResponse = %+v, want an error", name, r)
		}
	}
	_, err := readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\n\r\nok")))
	if !errors.Is(err, errNoLength) {
		t.Errorf("no length: err = %v, want errNoLength", err)
	}
}

// The client against a net/http server: keep-alive, a chunked answer, and a
// cancelled context ending a read that would wait.
func TestRawConnAgainstServer(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Write([]byte("hello"))
		case "/chunked":
			w.Write([]byte("part one "))
			w.(http.Flusher).Flush() // no Content-Length: chunked
			w.Write([]byte("part two"))
		case "/host":
			w.Write([]byte(r.Host))
		case "/wait":
			<-release
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	defer close(release)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, closeConn, err := dialRaw(ctx, srv.URL, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn()
	for _, tc := range []struct {
		path    string
		body    int64
		chunked bool
	}{{"/small", 5, false}, {"/chunked", 17, true}, {"/small", 5, false}, {"/host", int64(len(strings.TrimPrefix(srv.URL, "http://"))), false}} {
		r, err := rawGetOK(c, tc.path)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		if r.body != tc.body || r.chunked != tc.chunked || r.close {
			t.Fatalf("GET %s = %+v, want %d bytes, chunked %v", tc.path, r, tc.body, tc.chunked)
		}
	}
	if _, err := rawGetOK(c, "/nothing-here"); err == nil {
		t.Fatal("GET /nothing-here: want an error for status 404")
	}

	done := make(chan error, 1)
	go func() {
		_, err := c.get("/wait")
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("GET /wait after cancel: want an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET /wait did not end when the context was cancelled")
	}

	if _, _, err := dialRaw(context.Background(), "https://example.com", time.Second); err == nil {
		t.Fatal("dialRaw(https://...): want an error")
	}
}
