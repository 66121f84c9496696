// Command floor is the least a Go HTTP server can do per answer, measured
// beside the caches by bench/cmd/benchrun as the target "go-floor".
//
// It answers GET /bytes/1k, /bytes/100k and /healthz with responses rendered
// once a second, from one goroutine per connection that reads requests up to
// their blank line and writes the whole answer with one write: no parsing
// beyond the request line, no header map, no cache, no copying. Whatever
// tail latency it shows under wrk is the Go runtime's and the kernel's, not a
// cache's, so it is the floor against which cachegate's p99 can be read
// (bench/README.md, "The Go floor").
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cachegate/cachegate/bench/upstream"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	if err := serve(ctx, ln); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// maxRequest bounds a request's line and fields; a longer one closes the connection.
const maxRequest = 8 << 10

// answers maps a request path to its whole response, head and body.
type answers map[string][]byte

// render builds every answer with the given Date.
func render(now time.Time) answers {
	date := now.UTC().Format(http.TimeFormat)
	one := func(status int, ctype, cacheControl string, body []byte) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nCache-Control: %s\r\nContent-Length: %d\r\nContent-Type: %s\r\nDate: %s\r\n\r\n",
			status, http.StatusText(status), cacheControl, len(body), ctype, date)
		b.Write(body)
		return b.Bytes()
	}
	return answers{
		"/bytes/1k":   one(http.StatusOK, "application/octet-stream", "public, max-age=3600", upstream.Pattern(1<<10)),
		"/bytes/100k": one(http.StatusOK, "application/octet-stream", "public, max-age=3600", upstream.Pattern(100<<10)),
		"/healthz":    one(http.StatusOK, "text/plain; charset=utf-8", "no-store", []byte("ok\n")),
		"":            one(http.StatusNotFound, "text/plain; charset=utf-8", "no-store", []byte("not found\n")),
	}
}

// serve answers on ln until it is closed, re-rendering the answers every
// second so that Date stays current, as a real server's does.
func serve(ctx context.Context, ln net.Listener) error {
	var current atomic.Pointer[answers]
	a := render(time.Now())
	current.Store(&a)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				a := render(now)
				current.Store(&a)
			}
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serveConn(c, &current)
	}
}

// serveConn answers the requests on c in order, pipelined ones included,
// until the client closes, asks to close or sends something too long.
func serveConn(c net.Conn, current *atomic.Pointer[answers]) {
	defer c.Close()
	buf := make([]byte, maxRequest)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		if err != nil {
			return
		}
		n += m
		for {
			end := bytes.Index(buf[:n], []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			req := buf[:end]
			a := *current.Load()
			resp, ok := a[string(requestPath(req))] // string(b) as a map key does not allocate
			if !ok {
				resp = a[""]
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
			if wantsClose(req) {
				return
			}
			n = copy(buf, buf[end+4:n])
		}
		if n == len(buf) {
			return
		}
	}
}

// wantsClose reports whether a request's fields say Connection: close,
// without the copy a lower-casing would make on every request.
func wantsClose(req []byte) bool {
	_, fields, _ := bytes.Cut(req, []byte("\r\n"))
	for len(fields) > 0 {
		var line []byte
		line, fields, _ = bytes.Cut(fields, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(bytes.TrimSpace(value), []byte("close")) {
			return true
		}
	}
	return false
}

// requestPath is the path of a request line "GET /path?query HTTP/1.1"
// without its query; empty for anything else, which gets the 404.
func requestPath(req []byte) []byte {
	line, _, _ := bytes.Cut(req, []byte("\r\n"))
	rest, ok := bytes.CutPrefix(line, []byte("GET "))
	if !ok {
		return nil
	}
	target, _, _ := bytes.Cut(rest, []byte(" "))
	path, _, _ := bytes.Cut(target, []byte("?"))
	return path
}
