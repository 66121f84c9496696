package e2e_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
)

// client_read_timeout bounds reading a request, not answering it: answers
// that take longer than it, streamed misses and pass-through alike, arrive
// whole, while a request whose body stalls is cut off.
func TestClientReadTimeoutBoundsRequestsNotAnswers(t *testing.T) {
	const chunks = 8
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(300 * time.Millisecond) // a slow upstream: even its headers come after the read timeout
		for range chunks {
			w.Write(chunk)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	t.Cleanup(us.Close)
	for _, lane := range []bool{true, false} {
		t.Run(fmt.Sprintf("fast lane %v", lane), func(t *testing.T) {
			srv := startServer(t, web.Config{Backend: sqliteDSN(t), Upstreams: []web.UpstreamConfig{upstream("up", us.URL)},
				ClientReadTimeout: 200 * time.Millisecond, NoFastLane: !lane})
			testClientReadTimeout(t, srv.URL())
		})
	}
}

func testClientReadTimeout(t *testing.T, base string) {
	const chunks = 8
	const chunkLen = 64 << 10
	for _, tc := range []struct {
		name   string
		method string
		header []string
		xcache string
	}{
		{"streamed miss", http.MethodGet, nil, "MISS"},
		{"pass-through", http.MethodGet, []string{"Cache-Control", "no-store"}, "BYPASS"},
		{"pass-through with a body", http.MethodPost, nil, "BYPASS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+"/fetch/up/slow?"+strings.ReplaceAll(tc.name, " ", "-"), strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.method == http.MethodGet {
				req.Body, req.ContentLength = http.NoBody, 0
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err != nil || n != chunks*chunkLen {
				t.Fatalf("%d bytes (%v), want %d", n, err, chunks*chunkLen)
			}
			if got := resp.Header.Get("X-Cache"); got != tc.xcache {
				t.Errorf("X-Cache %q, want %q", got, tc.xcache)
			}
		})
	}

	t.Run("stalled request body", func(t *testing.T) {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "POST /fetch/up/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly ten b")
		// The server must end it on its own, long before this.
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("the request with a stalled body was not ended: %v", err)
		}
	})
}
