package fastlane

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/gateway"
)

// bodyFile writes body to a new file.
func bodyFile(t *testing.T, body []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(body); err != nil {
		t.Fatal(err)
	}
	return f
}

// A body sent from its file with sendfile reaches the client exactly as
// net/http sends the same bytes written from memory; the body of a file
// closed under the answer (its entry left memory) goes from memory.
func TestSendFileAsNetHTTPWritesBytes(t *testing.T) {
	body := bytes.Repeat([]byte("sendfile body "), 10<<10) // 140 KiB
	f := bodyFile(t, body)
	closed := bodyFile(t, body)
	closed.Close()
	// The answer's Body differs from the file's bytes (same length), so
	// that the client's bytes tell which went out.
	inMemory := bytes.Repeat([]byte("M"), len(body))

	plain, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}), false, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: quietLog()}
	lane := Attach(srv, ln, Options{Prefix: "/fetch/", Lookup: func(r *http.Request) (gateway.Answer, bool) {
		a := answerOf(body, "application/octet-stream")
		a.File = f
		if strings.Contains(r.URL.RawQuery, "closed") {
			a.File, a.Body = closed, inMemory
		}
		return a, true
	}})
	go srv.Serve(lane)
	t.Cleanup(func() { srv.Close() })
	laned := ln.Addr().String()

	for _, raw := range []string{
		"GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\nGET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n", // keep-alive
	} {
		want := normalize(exchange(t, plain, []byte(raw), 0))
		got := normalize(exchange(t, laned, []byte(raw), 0))
		if got != want {
			t.Errorf("to %q the lane answered %d bytes, net/http %d:\n%.300s\nwant\n%.300s", raw, len(got), len(want), got, want)
		}
	}
	got := exchange(t, laned, []byte("GET /fetch/a?closed HTTP/1.1\r\nHost: h\r\n\r\n"), 0)
	if !bytes.HasSuffix(got, inMemory) {
		t.Errorf("a closed file's answer did not come from memory: %.200q", got)
	}
	if got := lane.Answered(); got != 4 {
		t.Errorf("lane answered %d, want 4", got)
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
	f := bodyFile(t, bytes.Repeat([]byte("f"), len(body)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: quietLog()}
	lane := Attach(srv, hiddenConns{ln}, Options{Prefix: "/fetch/", Lookup: func(r *http.Request) (gateway.Answer, bool) {
		a := answerOf(body, "application/octet-stream")
		a.File = f
		return a, true
	}})
	go srv.Serve(lane)
	t.Cleanup(func() { srv.Close() })
	got := exchange(t, ln.Addr().String(), []byte("GET /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n"), 0)
	if !bytes.HasSuffix(got, body) || !bytes.Contains(got, []byte("Content-Length: 51200\r\n")) {
		t.Fatalf("answer of %d bytes, want the head and %d body bytes from memory", len(got), len(body))
	}
}
