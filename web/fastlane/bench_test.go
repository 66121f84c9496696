package fastlane

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"strconv"
	"testing"

	"github.com/cachegate/cachegate/gateway"
)

// BenchmarkHit compares a 1 KiB answer through net/http alone with the
// same answer written by the lane from a gateway.Answer, over loopback
// keep-alive connections (b.RunParallel, one connection per goroutine, 16
// per CPU). The client is a bare loop over the socket so that it costs
// little next to the server.
func BenchmarkHit(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
	answer := answerOf(body, "application/octet-stream")
	for _, name := range []string{"net-http", "lane"} {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(h)}
			var l net.Listener = ln
			if name == "lane" {
				l = Attach(srv, ln, Options{Prefix: "/", Lookup: func(r *http.Request) (gateway.Answer, bool) {
					return answer, true
				}})
			}
			go srv.Serve(l)
			defer srv.Close()
			req := []byte("GET /fetch/x HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.SetParallelism(16) // 32 connections on 2 cores, like wrk -c64 on its 2 threads
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReaderSize(c, 4096)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					if err := readAnswer(br, len(body)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// readAnswer reads one response head and a body of n bytes.
func readAnswer(br *bufio.Reader, n int) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
	}
	_, err := br.Discard(n)
	return err
}
