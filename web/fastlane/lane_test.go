package fastlane

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// echo answers with a description of the request, so that two servers'
// answers to the same bytes can be compared. Paths choose how it writes.
func echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s host=%q body=%q\n", r.Method, r.RequestURI, r.Proto, r.Host, body)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q\n", k, r.Header[k])
	}
	text := b.String()
	h := w.Header()
	switch strings.TrimPrefix(r.URL.Path, "/fetch") {
	case "/big":
		big := bytes.Repeat([]byte(text), 200<<10/len(text)+1)
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", fmt.Sprint(len(big)))
		w.Write(big)
	case "/sniff":
		w.Write([]byte("<html><body>" + text))
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/status":
		h.Set("Content-Type", "text/plain")
		h["X-Odd"] = []string{"a\r\nb", "  spaced  "}
		h["Bad Name"] = []string{"dropped"}
		w.WriteHeader(299)
		w.Write([]byte(text))
	case "/two-writes":
		h.Set("Content-Type", "text/plain")
		w.Write([]byte(text))
		w.Write([]byte(text))
	default:
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", fmt.Sprint(len(text)))
		w.Write([]byte(text))
	}
}

// served counts the requests the lane answered in the tests' servers.
var served atomic.Int64

// echoLookup is the lane's Lookup for the tests: echo's answer to the
// plain GETs whose answer echo writes with a Content-Type and a
// Content-Length, rendered as net/http writes it; it declines the rest,
// and panics on /fetch/panic.
func echoLookup(r *http.Request) (gateway.Answer, bool) {
	switch r.URL.Path {
	case "/fetch/panic":
		panic("echoLookup: deliberate panic")
	case "/fetch/big", "/fetch/a", "/fetch/last", "/fetch/after-close", "/fetch/~a/b c":
	default:
		return gateway.Answer{}, false
	}
	rec := httptest.NewRecorder()
	echo(rec, r)
	served.Add(1)
	return answerOf(rec.Body.Bytes(), "text/plain"), true
}

// answerOf is the Answer of a 200 with this body and Content-Type, whose
// head is what net/http writes for a handler that sets the type and the
// length.
func answerOf(body []byte, contentType string) gateway.Answer {
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: %s\r\nDate: %s\r\n\r\n",
		len(body), contentType, time.Now().UTC().Format(http.TimeFormat))
	return gateway.Answer{Head: []byte(head), IDAt: len("HTTP/1.1 200 OK\r\n"), Body: body}
}

type pair struct {
	plain, laned string // addresses
	lanedSrv     *http.Server
}

func newServer(t testing.TB, h http.Handler, withLane bool, tune func(*http.Server)) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second, ErrorLog: quietLog()}
	if tune != nil {
		tune(srv)
	}
	addr := ln.Addr().String()
	if withLane {
		ln = Attach(srv, ln, Options{Prefix: "/fetch/", Lookup: echoLookup})
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return addr, srv
}

func newPair(t testing.TB) pair {
	plain, _ := newServer(t, http.HandlerFunc(echo), false, nil)
	laned, srv := newServer(t, http.HandlerFunc(echo), true, nil)
	return pair{plain: plain, laned: laned, lanedSrv: srv}
}

// exchange sends raw to addr in pieces of chunk bytes (all at once if
// chunk <= 0), half-closes, and returns everything the server sent until
// it closed.
func exchange(t testing.TB, addr string, raw []byte, chunk int) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(c)
		done <- b
	}()
	if chunk <= 0 {
		chunk = len(raw)
	}
	for len(raw) > 0 {
		n := min(chunk, len(raw))
		if _, err := c.Write(raw[:n]); err != nil {
			break // the server may close first, after a bad request
		}
		raw = raw[n:]
		if len(raw) > 0 && chunk < 64 {
			time.Sleep(time.Millisecond)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	return <-done
}

var dateLine = regexp.MustCompile(`(?m)^Date: .*\r\n`)

func normalize(b []byte) string { return dateLine.ReplaceAllString(string(b), "Date: *\r\n") }

// same checks that the laned server answers raw exactly as net/http
// alone does.
func (p pair) same(t *testing.T, raw string, chunk int) string {
	t.Helper()
	want := normalize(exchange(t, p.plain, []byte(raw), chunk))
	got := normalize(exchange(t, p.laned, []byte(raw), chunk))
	if got != want {
		t.Errorf("laned server answered\n%s\nnet/http alone answered\n%s\nto\n%q", got, want, raw)
	}
	return got
}

const get = "GET /fetch/a?x=1 HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\nAccept: */*\r\naccept: text/plain\r\nX-Empty:\r\n\r\n"

func TestSameBytesAsNetHTTP(t *testing.T) {
	p := newPair(t)
	mixed := get +
		"POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /other HTTP/1.1\r\nHost: h\r\n\r\n" +
		"HEAD /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n" +
		"HEAD /fetch/big HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/decline HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/panic HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/sniff HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/nocontent HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/status HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/two-writes HTTP/1.1\r\nHost: h\r\n\r\n" +
		"GET /fetch/big HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n" +
		"GET /fetch/%7Ea/b%20c?q=%20&r HTTP/1.1\r\nHost: [::1]:80\r\n\r\n" +
		"GET /fetch/last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" +
		"GET /fetch/after-close HTTP/1.1\r\nHost: h\r\n\r\n"
	before := served.Load()
	for _, chunk := range []int{0, 1, 7, 100} {
		t.Run(fmt.Sprint("chunk", chunk), func(t *testing.T) {
			out := p.same(t, mixed, chunk)
			if n := strings.Count(out, "\r\nDate: *\r\n"); n != 14 {
				t.Errorf("%d responses, want 14 (the one after Connection: close unanswered):\n%s", n, out)
			}
		})
	}
	if served.Load() == before {
		t.Error("the lane answered none of the requests")
	}
}

func TestMalformedAsNetHTTP(t *testing.T) {
	p := newPair(t)
	for name, raw := range map[string]string{
		"bare LF":             "GET /fetch/a HTTP/1.1\nHost: h\n\n",
		"bare LF after one":   get + "GET /fetch/a HTTP/1.1\nHost: h\n\n",
		"folded":              "GET /fetch/a HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"no host":             get + "GET /fetch/a HTTP/1.1\r\n\r\n",
		"two hosts":           "GET /fetch/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"bad host":            "GET /fetch/a HTTP/1.1\r\nHost: a b\r\n\r\n",
		"space before colon":  "GET /fetch/a HTTP/1.1\r\nHost : h\r\n\r\n",
		"control in value":    "GET /fetch/a HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n",
		"two lengths":         "POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"bad length":          "POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
		"signed length":       "POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: +2\r\n\r\nhi" + get,
		"length and chunked":  "POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get,
		"chunked then get":    "POST /fetch/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + get,
		"http/1.0":            "GET /fetch/a HTTP/1.0\r\nHost: h\r\n\r\n",
		"http/1.0 keep-alive": "GET /fetch/a HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n" + get,
		"h2 preface":          "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"garbage":             get + "\x00\x01\x02 nonsense\r\n\r\n",
		"empty line first":    "\r\n" + get,
		"absolute target":     "GET http://h/fetch/a HTTP/1.1\r\nHost: h\r\n\r\n",
		"fragment":            "GET /fetch/a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
		"utf-8 target":        "GET /fetch/\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",
		"huge head":           "GET /fetch/a HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("a", 10<<10) + "\r\n\r\n" + get,
		"get with body":       "GET /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" + get,
		"expect":              "POST /fetch/a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi" + get,
		"incomplete":          get + "GET /fetch/a HTTP/1.1\r\nHost: h\r\n",
		"lowercase method":    "get /fetch/a HTTP/1.1\r\nHost: h\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) { p.same(t, raw, 0) })
	}
}

// FuzzSameAsNetHTTP feeds arbitrary bytes to both servers: whatever they
// are, the laned server must answer exactly as net/http alone.
func FuzzSameAsNetHTTP(f *testing.F) {
	f.Add([]byte(get + get))
	f.Add([]byte(get + "POST /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi" + get))
	f.Add([]byte("GET /fetch/a HTTP/1.1\nHost: h\n\n"))
	f.Add([]byte("HEAD /fetch/big HTTP/1.1\r\nHost: h\r\n\r\n" + get))
	f.Add([]byte(get + "POST /fetch/a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n" + get))
	p := newPair(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		want := normalize(exchange(t, p.plain, raw, 0))
		got := normalize(exchange(t, p.laned, raw, 0))
		if got != want {
			t.Errorf("laned server answered\n%q\nnet/http alone answered\n%q\nto\n%q", got, want, raw)
		}
	})
}

// dialLaned opens a keep-alive connection to a laned server.
func dialLaned(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// roundTrip writes raw and reads one response.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader, raw string) *http.Response {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

func TestHijackAfterLane(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo: " + line)
		brw.Flush()
	})
	addr, _ := newServer(t, mux, true, nil)
	c, br := dialLaned(t, addr)
	if res := roundTrip(t, c, br, get); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// The upgrade and the first line of the new protocol in one write:
	// the line must reach the handler that hijacked the connection.
	io.WriteString(c, "GET /hijack HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nping\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("after the upgrade got %q, %v", line, err)
	}
}

func TestClientGoneCancelsHandedRequest(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	started := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		close(started)
		select {
		case <-r.Context().Done():
			cancelled <- time.Since(start)
		case <-time.After(5 * time.Second):
			cancelled <- -1
		}
	})
	addr, _ := newServer(t, mux, true, nil)
	c, br := dialLaned(t, addr)
	roundTrip(t, c, br, get)
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	c.Close()
	if d := <-cancelled; d < 0 || d > 2*time.Second {
		t.Fatalf("the handler's context was not cancelled when the client went (%v)", d)
	}
}

func TestExpectContinueThenLane(t *testing.T) {
	addr, _ := newServer(t, http.HandlerFunc(echo), true, nil)
	c, br := dialLaned(t, addr)
	roundTrip(t, c, br, get)
	io.WriteString(c, "POST /fetch/a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 100 {
		t.Fatalf("want 100 Continue, got %v %v", res, err)
	}
	res = roundTrip(t, c, br, "hello")
	body, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(body), `body="hello"`) {
		t.Fatalf("body not passed on: %s", body)
	}
	before := served.Load()
	roundTrip(t, c, br, get)
	if served.Load() != before+1 {
		t.Fatal("the lane did not answer the request after the handed one")
	}
}

func TestLargeBodyHandedThenLane(t *testing.T) {
	addr, _ := newServer(t, http.HandlerFunc(echo), true, nil)
	c, br := dialLaned(t, addr)
	body := strings.Repeat("x", 1<<20)
	res := roundTrip(t, c, br, fmt.Sprintf("PUT /fetch/a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
	got, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(got), strings.Repeat("x", 1000)) {
		t.Fatalf("the body did not reach the handler whole")
	}
	before := served.Load()
	res = roundTrip(t, c, br, "GET /fetch/big HTTP/1.1\r\nHost: h\r\n\r\n")
	got, _ = io.ReadAll(res.Body)
	if served.Load() != before+1 || len(got) < 200<<10 || res.ContentLength != int64(len(got)) {
		t.Fatalf("the large answer after it: lane %v, %d bytes, Content-Length %d", served.Load() != before, len(got), res.ContentLength)
	}
}

func TestTimeoutsBetweenLaneRequests(t *testing.T) {
	addr, _ := newServer(t, http.HandlerFunc(echo), true, func(s *http.Server) {
		s.IdleTimeout = 200 * time.Millisecond
		s.ReadHeaderTimeout = 200 * time.Millisecond
	})
	for name, next := range map[string]string{"idle": "", "slow head": "GET /fetch/a HTTP/1.1\r\nHo"} {
		t.Run(name, func(t *testing.T) {
			c, br := dialLaned(t, addr)
			roundTrip(t, c, br, get)
			roundTrip(t, c, br, get)
			io.WriteString(c, next)
			start := time.Now()
			rest, err := io.ReadAll(br) // net/http may say 408 first
			if err != nil || time.Since(start) > 3*time.Second {
				t.Fatalf("connection not closed by the timeout: %v after %v", err, time.Since(start))
			}
			t.Logf("after %v: %q", time.Since(start), rest)
		})
	}
}

func TestShutdownClosesLaneConnections(t *testing.T) {
	addr, srv := newServer(t, http.HandlerFunc(echo), true, nil)
	c, br := dialLaned(t, addr)
	roundTrip(t, c, br, get)
	roundTrip(t, c, br, get)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the idle connection is still open after shutdown")
	}
}

func TestPipelinedWhileHandlerRuns(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", echo)
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "waited")
	})
	addr, _ := newServer(t, mux, true, nil)
	c, br := dialLaned(t, addr)
	// The lane must hold the pipelined requests (more than it buffers at
	// once) until the server has answered /wait, then answer them in order.
	n := 3000
	go func() {
		io.WriteString(c, "GET /wait HTTP/1.1\r\nHost: h\r\n\r\n"+strings.Repeat(get, n))
	}()
	time.Sleep(100 * time.Millisecond)
	close(release)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(res.Body); string(b) != "waited" {
		t.Fatalf("first answer %q", b)
	}
	for i := range n {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		io.Copy(io.Discard, res.Body)
	}
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }

// An answer that waits (for a fetch another request makes) outlives the
// server's Shutdown, to which its connection looks idle: WaitAnswers
// holds the shutdown until it is written, and the client gets it whole.
func TestWaitAnswersLetsAWaitingAnswerFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(echo), ErrorLog: quietLog()}
	lane := Attach(srv, ln, Options{Prefix: "/fetch/", Lookup: func(r *http.Request) (gateway.Answer, bool) {
		close(entered)
		<-release
		return answerOf([]byte("waited"), "text/plain"), true
	}})
	go srv.Serve(lane)
	t.Cleanup(func() { srv.Close() })

	c, br := dialLaned(t, ln.Addr().String())
	// A first request for the server makes the connection idle to it (a
	// new one it would wait for, up to 5 s).
	roundTrip(t, c, br, "GET /other HTTP/1.1\r\nHost: example.test\r\n\r\n")
	if _, err := io.WriteString(c, get); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- lane.WaitAnswers(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("WaitAnswers returned %v while an answer was under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatalf("WaitAnswers: %v", err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || string(body) != "waited" {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
	// No further request is answered: the connection ends.
	io.WriteString(c, get)
	if _, err := http.ReadResponse(br, nil); err == nil {
		t.Fatal("a request after the shutdown was answered")
	}

	// With nothing under way, WaitAnswers returns at once; a done context
	// ends a wait that would not.
	if err := lane.WaitAnswers(ctx); err != nil {
		t.Fatalf("WaitAnswers with nothing under way: %v", err)
	}
}
