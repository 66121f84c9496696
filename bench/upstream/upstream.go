// Package upstream is the origin server the benchmarks put behind every cache:
// it answers from memory so that what is measured is the cache in front of it,
// and it counts calls so the herd test can tell how many requests got through.
//
// Routes:
//
//	GET /bytes/N       N bytes (N like 1024, 1k, 100k, 1m; up to MaxBody); the
//	                   query is ignored, so /bytes/1k?n=7 is a distinct URL for
//	                   a cache but the same body
//	GET /slow?ms=M&id=I  a short body after M milliseconds (at most 10 s);
//	                   calls are counted per id
//	GET /_calls?id=I   how many times /slow was called with that id, as text
//	GET /_stats        {"requests":N,"slow_calls":M} since start
//	GET /healthz       "ok", not cacheable
//
// Every /bytes and /slow answer carries Cache-Control: public, max-age=3600 so
// that nginx and Varnish store it.
package upstream

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxBody is the largest body /bytes/N serves (1 GiB), enough for streaming tests.
const MaxBody = 1 << 30

// MaxSlow is the longest delay /slow accepts.
const MaxSlow = 10 * time.Second

// chunk is written repeatedly for bodies larger than itself.
const chunkSize = 1 << 20

// Header values are shared, read-only slices: net/http never modifies them,
// and setting them directly skips canonicalization on the hot path.
var (
	hCacheable = []string{"public, max-age=3600"}
	hNoStore   = []string{"no-store"}
	hOctet     = []string{"application/octet-stream"}
	hText      = []string{"text/plain; charset=utf-8"}
)

// Server is the upstream's http.Handler. The zero value is not usable; call New.
type Server struct {
	chunk    []byte // read-only pattern, sliced for every /bytes answer
	requests atomic.Int64

	mu    sync.Mutex     // protects calls
	calls map[string]int // /slow calls per id
	slow  atomic.Int64   // all /slow calls
}

// New returns a Server with its body pattern precomputed.
func New() *Server {
	return &Server{chunk: Pattern(chunkSize), calls: make(map[string]int)}
}

// Pattern returns the first n bytes of every /bytes body: the alphabet and the
// digits, one line after another. bench/cmd/floor answers with the same bytes.
func Pattern(n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789\n"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[i%len(alphabet)]
	}
	return b
}

// ServeHTTP routes the request; see the package comment.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if rest, ok := strings.CutPrefix(r.URL.Path, "/bytes/"); ok {
		s.serveBytes(w, rest)
		return
	}
	switch r.URL.Path {
	case "/slow":
		s.serveSlow(w, r)
	case "/_calls":
		s.mu.Lock()
		n := s.calls[r.URL.Query().Get("id")]
		s.mu.Unlock()
		w.Header()["Cache-Control"] = hNoStore
		fmt.Fprintf(w, "%d\n", n)
	case "/_stats":
		w.Header()["Cache-Control"] = hNoStore
		w.Header()["Content-Type"] = []string{"application/json"}
		fmt.Fprintf(w, `{"requests":%d,"slow_calls":%d}`+"\n", s.requests.Load(), s.slow.Load())
	case "/healthz":
		w.Header()["Cache-Control"] = hNoStore
		w.Header()["Content-Type"] = hText
		w.Write([]byte("ok\n"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveBytes(w http.ResponseWriter, size string) {
	n, err := ParseSize(size)
	if err != nil || n > MaxBody {
		http.Error(w, fmt.Sprintf("bad size %q: want N, Nk or Nm up to %d bytes", size, MaxBody), http.StatusBadRequest)
		return
	}
	h := w.Header()
	h["Cache-Control"] = hCacheable
	h["Content-Type"] = hOctet
	h["Content-Length"] = []string{strconv.Itoa(n)}
	for n > 0 {
		c := min(n, len(s.chunk))
		if _, err := w.Write(s.chunk[:c]); err != nil {
			return // client went away
		}
		n -= c
	}
}

func (s *Server) serveSlow(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ms, err := strconv.Atoi(q.Get("ms"))
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > MaxSlow {
		http.Error(w, fmt.Sprintf("bad ms %q: want 0 to %d", q.Get("ms"), MaxSlow.Milliseconds()), http.StatusBadRequest)
		return
	}
	s.slow.Add(1)
	s.mu.Lock()
	s.calls[q.Get("id")]++
	s.mu.Unlock()

	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header()["Cache-Control"] = hCacheable
	w.Header()["Content-Type"] = hText
	w.Write([]byte("slow\n"))
}

// ParseSize reads a body size such as "1024", "1k" (1024) or "2m" (2 MiB).
func ParseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > MaxBody/mult {
		return 0, fmt.Errorf("upstream: bad size %q", s)
	}
	return n * mult, nil
}
