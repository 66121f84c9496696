package fastlane

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// testFileBody is a body kept in a file too, as the gateway passes one.
type testFileBody struct {
	bytes.Reader
	f *os.File
	n int64
}

func (b *testFileBody) BodyFile() (syscall.Conn, int64, int64) { return b.f, 0, b.n }

// A body sent from its file with sendfile reaches the client exactly as
// net/http sends the same bytes written from memory; so does the body of
// a file closed under the answer (from memory, then), and a HEAD.
func TestSendFileAsNetHTTPWritesBytes(t *testing.T) {
	body := bytes.Repeat([]byte("sendfile body "), 10<<10) // 140 KiB
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	closed, err := os.CreateTemp(t.TempDir(), "closed")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()

	setHeader := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("X-Cache", "HIT")
	}
	plain, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setHeader(w)
		w.Write(body)
	}), false, nil)

	var viaFile, fellBack int
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: quietLog()}
	lane := Attach(srv, ln, Options{Prefix: "/fetch/", Serve: func(w http.ResponseWriter, r *http.Request) bool {
		setHeader(w)
		fb := &testFileBody{f: f, n: int64(len(body))}
		if strings.Contains(r.URL.RawQuery, "closed") {
			fb.f = closed
		}
		fb.Reset(body)
		n, err := w.(io.ReaderFrom).ReadFrom(fb)
		if err != nil || (n != int64(len(body)) && r.Method != http.MethodHead) {
			t.Errorf("ReadFrom: %d, %v", n, err)
		}
		if fb.Len() == len(body) {
			viaFile++ // the bytes were not read: the file went out
		} else {
			fellBack++
		}
		return true
	}})
	go srv.Serve(lane)
	t.Cleanup(func() { srv.Close() })
	laned := ln.Addr().String()

	for _, raw := range []string{
		"GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\nGET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n", // keep-alive
		"GET /fetch/a?closed HTTP/1.1\r\nHost: h\r\n\r\n",
		"HEAD /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		want := normalize(exchange(t, plain, []byte(raw), 0))
		got := normalize(exchange(t, laned, []byte(raw), 0))
		if got != want {
			t.Errorf("to %q the lane answered %d bytes, net/http %d:\n%.300s\nwant\n%.300s", raw, len(got), len(want), got, want)
		}
	}
	if viaFile != 3 || fellBack != 2 {
		t.Errorf("%d answers from the file, %d from memory; want 3 and 2 (closed file, HEAD)", viaFile, fellBack)
	}
	if got := lane.Answered(); got != 5 {
		t.Errorf("lane answered %d, want 5", got)
	}
}

// hiddenConns hands out connections that are not syscall.Conns, as a TLS
// listener would.
type hiddenConns struct{ net.Listener }

func (l hiddenConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return struct{ net.Conn }{c}, nil
}

// Over a connection that is not a kernel socket the body goes out from
// memory, whole.
func TestSendFileFallsBackOffSockets(t *testing.T) {
	body := bytes.Repeat([]byte("b"), 50<<10)
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(body)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: quietLog()}
	lane := Attach(srv, hiddenConns{ln}, Options{Prefix: "/fetch/", Serve: func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		fb := &testFileBody{f: f, n: int64(len(body))}
		fb.Reset(body)
		w.(io.ReaderFrom).ReadFrom(fb)
		if fb.Len() != 0 {
			t.Error("the body was not read from memory")
		}
		return true
	}})
	go srv.Serve(lane)
	t.Cleanup(func() { srv.Close() })
	got := exchange(t, ln.Addr().String(), []byte("GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n"), 0)
	if !bytes.HasSuffix(got, body) || !bytes.Contains(got, []byte("Content-Length: 51200\r\n")) {
		t.Fatalf("answer of %d bytes, want the head and %d body bytes", len(got), len(body))
	}
}
