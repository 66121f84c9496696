package fastlane

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// headMemory is the part of the lane's writer a handler uses to send a
// head again (the gateway's memo of hit heads).
type headMemory interface {
	RecordHead()
	RecordedHead() (head []byte, date int64, ok bool)
	ReplayHead(head []byte, status int, length int64) bool
}

// A head recorded from one answer and replayed for the next ones gives
// the bytes net/http writes for the handler's fields, with the body
// written from memory and sent from its file alike.
func TestReplayedHeadAsNetHTTP(t *testing.T) {
	small := []byte("a small body\n")
	big := bytes.Repeat([]byte("replayed body "), 8<<10) // 112 KiB
	f, err := os.CreateTemp(t.TempDir(), "big")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(big); err != nil {
		t.Fatal(err)
	}
	bodyOf := func(r *http.Request) []byte {
		if strings.HasSuffix(r.URL.Path, "/big") {
			return big
		}
		return small
	}
	setHeader := func(h http.Header, n int) {
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(n))
		h.Set("Cache-Status", "cachegate; hit; ttl=59")
		h["X-Odd"] = []string{"a\r\nb", "  spaced  "}
	}
	plain, _ := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := bodyOf(r)
		setHeader(w.Header(), len(body))
		w.WriteHeader(203)
		w.Write(body)
	}), false, nil)

	heads := map[string][]byte{}
	replayed := 0
	laned := laneOnly(t, func(w http.ResponseWriter, r *http.Request) bool {
		mem := w.(headMemory)
		body := bodyOf(r)
		if head, ok := heads[r.URL.Path]; ok && mem.ReplayHead(head, 203, int64(len(body))) {
			replayed++
		} else {
			mem.RecordHead()
			setHeader(w.Header(), len(body))
			w.WriteHeader(203)
		}
		if len(body) == len(big) {
			fb := &testFileBody{f: f, n: int64(len(body))}
			fb.Reset(body)
			w.(io.ReaderFrom).ReadFrom(fb)
		} else {
			w.Write(body)
		}
		if head, _, ok := mem.RecordedHead(); ok {
			heads[r.URL.Path] = head
		}
		return true
	})

	for _, path := range []string{"/fetch/small", "/fetch/big"} {
		req := "GET " + path + " HTTP/1.1\r\nHost: h\r\n\r\n"
		raw := strings.Repeat(req, 3) // recorded, then replayed twice on one connection
		want := normalize(exchange(t, plain, []byte(raw), 0))
		got := normalize(exchange(t, laned, []byte(raw), 0))
		if got != want {
			t.Errorf("%s: the lane answered %d bytes, net/http %d:\n%.400s\nwant\n%.400s", path, len(got), len(want), got, want)
		}
	}
	if replayed != 4 {
		t.Errorf("%d heads replayed, want 4 (two per path)", replayed)
	}
}

// Only a head the writer added nothing to but Date is offered for
// replay, with the second of that Date (-1 when the handler set Date), and a head is replayed only onto a response that has not begun
// and is not for a HEAD request.
func TestRecordedHeadOnlyWhenReplayable(t *testing.T) {
	cases := []struct {
		name   string
		method string
		write  func(w http.ResponseWriter)
		want   bool
	}{
		{"declared", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "2")
			w.Write([]byte("ok"))
		}, true},
		{"length added by the writer", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte("ok"))
		}, false},
		{"type sniffed", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "6")
			w.Write([]byte("<html>"))
		}, false},
		{"date set by the handler", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "2")
			w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
			w.Write([]byte("ok"))
		}, true},
	}
	type outcome struct {
		recorded, replayHEAD, replayAfterFields bool
		date                                    int64
	}
	got := map[string]outcome{}
	laned := laneOnly(t, func(w http.ResponseWriter, r *http.Request) bool {
		mem := w.(headMemory)
		name := r.URL.Query().Get("case")
		for _, c := range cases {
			if c.name != name {
				continue
			}
			var o outcome
			if r.Method == http.MethodHead {
				o.replayHEAD = mem.ReplayHead([]byte("HTTP/1.1 200 OK\r\n\r\n"), 200, 0)
				o.recorded, o.date = got[name].recorded, got[name].date
			} else {
				mem.RecordHead()
				w.Header().Set("X-First", "1")
				o.replayAfterFields = mem.ReplayHead([]byte("HTTP/1.1 200 OK\r\n\r\n"), 200, 0)
				c.write(w)
				_, o.date, o.recorded = mem.RecordedHead()
			}
			got[name] = o
		}
		return true
	})
	for _, c := range cases {
		q := "/fetch/x?case=" + strings.ReplaceAll(c.name, " ", "+")
		exchange(t, laned, []byte("GET "+q+" HTTP/1.1\r\nHost: h\r\n\r\nHEAD "+q+" HTTP/1.1\r\nHost: h\r\n\r\n"), 0)
		o := got[c.name]
		if o.recorded != c.want {
			t.Errorf("%s: recorded %v, want %v", c.name, o.recorded, c.want)
		}
		handlerDate := strings.HasPrefix(c.name, "date")
		if now := time.Now().Unix(); o.recorded && (handlerDate && o.date != -1 || !handlerDate && (o.date < now-5 || o.date > now)) {
			t.Errorf("%s: recorded with Date second %d (now %d)", c.name, o.date, now)
		}
		if o.replayHEAD || o.replayAfterFields {
			t.Errorf("%s: a head was replayed onto a HEAD (%v) or after fields were set (%v)", c.name, o.replayHEAD, o.replayAfterFields)
		}
	}
}

// laneOnly serves requests below /fetch/ with serve on a lane in front of
// a server that answers nothing itself, and returns its address.
func laneOnly(t testing.TB, serve func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ErrorLog: quietLog()}
	go srv.Serve(Attach(srv, ln, Options{Prefix: "/fetch/", Serve: serve}))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// FuzzReplayedHeadAsNetHTTP varies the status, a header value and the body
// of a cached answer: recorded once and replayed twice on one connection,
// the lane's bytes must be net/http's.
func FuzzReplayedHeadAsNetHTTP(f *testing.F) {
	f.Add(203, "a\r\nb", []byte("a small body\n"))
	f.Add(200, "  spaced  ", []byte{})
	f.Add(404, "", []byte("<html>not found</html>"))
	f.Add(204, "x", []byte("dropped"))
	f.Add(304, "y", []byte("dropped too"))
	type answer struct {
		status int
		value  string
		body   []byte
	}
	var (
		mu    sync.Mutex
		cur   answer
		heads map[string][]byte
	)
	write := func(w http.ResponseWriter, a answer) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		h["X-Value"] = []string{a.value}
		w.WriteHeader(a.status)
		w.Write(a.body)
	}
	plain, _ := newServer(f, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a := cur
		mu.Unlock()
		write(w, a)
	}), false, nil)
	laned := laneOnly(f, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		mem := w.(headMemory)
		if head, ok := heads[r.URL.Path]; ok && mem.ReplayHead(head, cur.status, int64(len(cur.body))) {
			w.Write(cur.body)
			return true
		}
		mem.RecordHead()
		write(w, cur)
		if head, _, ok := mem.RecordedHead(); ok {
			heads[r.URL.Path] = head
		}
		return true
	})
	f.Fuzz(func(t *testing.T, status int, value string, body []byte) {
		if status < 200 || status > 599 {
			t.Skip("the gateway stores final statuses only")
		}
		mu.Lock()
		cur, heads = answer{status: status, value: value, body: body}, map[string][]byte{}
		mu.Unlock()
		raw := []byte(strings.Repeat("GET /fetch/x HTTP/1.1\r\nHost: h\r\n\r\n", 3))
		want := normalize(exchange(t, plain, raw, 0))
		got := normalize(exchange(t, laned, raw, 0))
		if got != want {
			t.Errorf("status %d, value %q, %d-byte body: the lane answered\n%q\nnet/http\n%q", status, value, len(body), got, want)
		}
	})
}
