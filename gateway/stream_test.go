package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// limitEnv is a gateway with chosen Options and upstream settings in front
// of one or more upstreams (by URL), served through the fast lane as the
// server runs it.
type limitEnv struct {
	*env
}

// newLimitEnv starts a gateway whose upstream "up" is upstreamURL, with
// opts and the upstream's settings changed by mut.
//
// backend nil means testBackend.
func newLimitEnv(t testing.TB, upstreamURL string, p cache.Policy, backend cache.Backend, opts gateway.Options, mut func(*gateway.Upstream), extra ...gateway.Upstream) *limitEnv {
	t.Helper()
	if backend == nil {
		backend = testBackend(t)
	}
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	opts.Now = c.Now
	up := gateway.Upstream{Name: "up", URL: u, Policy: p, Backend: backend, BackendName: "default", Timeout: 2 * time.Second}
	if mut != nil {
		mut(&up)
	}
	for i := range extra {
		extra[i].Backend, extra[i].BackendName = backend, "default"
	}
	g, err := gateway.New(opts, append([]gateway.Upstream{up}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv, lane := serveThroughLane(t, g, backend)
	return &limitEnv{&env{t: t, gw: g, srv: srv, backend: backend, clock: c, lane: lane}}
}

// open sends a GET below /fetch/up and returns the response with its body
// unread, on a connection of its own.
func (e *limitEnv) open(path string) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/fetch/up"+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	tr := &http.Transport{DisableKeepAlives: true}
	e.t.Cleanup(tr.CloseIdleConnections)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		e.t.Fatalf("GET %s: %v", path, err)
	}
	return resp
}

// waitFor polls cond until it holds or a generous bound passes: for
// effects that follow an answer in the background.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gatedBody is an upstream that sends the first half of a body, then waits
// for release before it sends the rest. chunked leaves Content-Length out.
type gatedBody struct {
	body    []byte
	chunked bool
	release chan struct{}
	calls   atomic.Int64
}

func (u *gatedBody) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	w.Header().Set("Content-Type", "application/octet-stream")
	if !u.chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(u.body)))
	}
	half := len(u.body) / 2
	w.Write(u.body[:half])
	w.(http.Flusher).Flush()
	select {
	case <-u.release:
	case <-r.Context().Done():
		return
	}
	w.Write(u.body[half:])
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// A miss larger than what is read before answering reaches its client as
// it arrives (the first half is there while the upstream holds back the
// second), and is stored whole once it has arrived.
func TestLargeMissStreamsAndIsStored(t *testing.T) {
	for _, tc := range []struct {
		name       string
		chunked    bool
		wantStatus string
	}{
		{"known length", false, "; stored"},
		{"unknown length", true, "; detail=streamed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &gatedBody{body: bigBody(1 << 20), chunked: tc.chunked, release: make(chan struct{})}
			us := httptest.NewServer(up)
			t.Cleanup(us.Close)
			e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{}, nil)

			resp := e.open("/big")
			defer resp.Body.Close()
			if got := resp.Header.Get("X-Cache"); got != "MISS" {
				t.Fatalf("X-Cache %q", got)
			}
			if got := resp.Header.Get("Cache-Status"); !strings.Contains(got, tc.wantStatus) {
				t.Fatalf("Cache-Status %q, want it to contain %q", got, tc.wantStatus)
			}
			half := make([]byte, len(up.body)/2)
			if _, err := io.ReadFull(resp.Body, half); err != nil {
				t.Fatalf("first half before the upstream sent the rest: %v", err)
			}
			if e.gw.InflightBytes() == 0 {
				t.Fatal("a body being collected holds none of the in-flight budget")
			}
			close(up.release)
			rest, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if got := append(half, rest...); !bytes.Equal(got, up.body) {
				t.Fatalf("body %d bytes, want %d", len(got), len(up.body))
			}
			waitFor(t, "the entry to be stored", func() bool { return len(e.entries()) == 1 })
			if got := e.entries()[0].Size; got != int64(len(up.body)) {
				t.Fatalf("stored %d bytes, want %d", got, len(up.body))
			}
			// The share is given back just after the store.
			waitFor(t, "the budget to be released", func() bool { return e.gw.InflightBytes() == 0 })
			if r := e.get("/big", "HIT"); r.body != string(up.body) {
				t.Fatalf("hit body %d bytes", len(r.body))
			}
		})
	}
}

// When the in-flight budget cannot hold a body, it streams to its client
// whole, is not stored, and Cache-Status says why.
func TestMissOverBudgetStreamsUnstored(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chunked bool
	}{
		{"known length", false},
		{"unknown length", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &gatedBody{body: bigBody(4 << 20), chunked: tc.chunked, release: make(chan struct{})}
			close(up.release)
			us := httptest.NewServer(up)
			t.Cleanup(us.Close)
			e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{MaxInflightBytes: 1 << 20}, nil)

			r := e.get("/big", "MISS")
			if r.body != string(up.body) {
				t.Fatalf("body %d bytes, want %d", len(r.body), len(up.body))
			}
			if got := r.header.Get("Cache-Status"); !strings.Contains(got, "detail=inflight-budget") {
				t.Fatalf("Cache-Status %q", got)
			}
			if n := len(e.entries()); n != 0 {
				t.Fatalf("%d entries stored", n)
			}
			waitFor(t, "the budget to be released", func() bool { return e.gw.InflightBytes() == 0 })
			e.get("/big", "MISS")
		})
	}
}

// Requests collapsed onto a streamed miss get the whole stored answer; when
// it could not be stored, each makes its own call and still gets it whole.
func TestFollowersOfAStreamedMiss(t *testing.T) {
	for _, tc := range []struct {
		name      string
		budget    int64
		wantCalls func(n int) int64
	}{
		{"stored", 0, func(int) int64 { return 1 }},
		{"over budget", 1 << 20, func(n int) int64 { return int64(n) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &gatedBody{body: bigBody(2 << 20), release: make(chan struct{})}
			us := httptest.NewServer(up)
			t.Cleanup(us.Close)
			e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{MaxInflightBytes: tc.budget}, nil)

			const n = 5
			results := make([]result, n)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); results[0] = e.do(http.MethodGet, "/big") }()
			waitFor(t, "the leader's call", func() bool { return up.calls.Load() == 1 })
			for i := 1; i < n; i++ {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = e.do(http.MethodGet, "/big") }()
			}
			close(up.release)
			wg.Wait()
			for i, r := range results {
				if r.status != http.StatusOK || r.body != string(up.body) {
					t.Errorf("request %d: %d, %d bytes (X-Cache %s)", i, r.status, len(r.body), r.xcache())
				}
			}
			if got, want := up.calls.Load(), tc.wantCalls(n); got != want {
				t.Errorf("%d upstream calls, want %d", got, want)
			}
		})
	}
}

// A leader whose client goes away while its body is being collected keeps
// reading it for the backend.
func TestLeaderGoneStillStores(t *testing.T) {
	up := &gatedBody{body: bigBody(1 << 20), release: make(chan struct{})}
	us := httptest.NewServer(up)
	t.Cleanup(us.Close)
	e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{}, nil)

	resp := e.open("/big")
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the client goes away
	close(up.release)
	waitFor(t, "the entry to be stored", func() bool { return len(e.entries()) == 1 })
	if got := e.entries()[0].Size; got != int64(len(up.body)) {
		t.Fatalf("stored %d bytes, want %d", got, len(up.body))
	}
	e.get("/big", "HIT")
}

// An upstream that stalls in the middle of a body is cut off after the
// upstream's read_timeout: the client's answer ends with an error, nothing
// is stored, and no budget stays taken.
func TestStalledBodyEndsAfterReadTimeout(t *testing.T) {
	up := &gatedBody{body: bigBody(1 << 20), release: make(chan struct{})} // never released
	us := httptest.NewServer(up)
	t.Cleanup(func() { us.CloseClientConnections(); us.Close() })
	e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{}, func(u *gateway.Upstream) {
		u.ReadTimeout = 100 * time.Millisecond
	})
	resp := e.open("/big")
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("the answer of a stalled upstream ended cleanly")
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored", n)
	}
	waitFor(t, "the budget to be released", func() bool { return e.gw.InflightBytes() == 0 })
}

// total_timeout ends a body that keeps coming for ever.
func TestEndlessBodyEndsAfterTotalTimeout(t *testing.T) {
	us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := bigBody(4 << 10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(func() { us.CloseClientConnections(); us.Close() })
	e := newLimitEnv(t, us.URL, policy(), nil, gateway.Options{}, func(u *gateway.Upstream) {
		u.TotalTimeout = time.Second
	})
	resp := e.open("/endless")
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil {
		t.Fatal("an endless body ended cleanly")
	}
	if n == 0 {
		t.Fatal("nothing of the body streamed before the cut")
	}
	if got := len(e.entries()); got != 0 {
		t.Fatalf("%d entries stored", got)
	}
}

// A client that stops reading is cut off after the gateway's WriteTimeout,
// write by write: a streamed miss being collected is then still read to its
// end and stored, and a large hit's handler returns.
func TestClientThatStopsReadingIsCutOff(t *testing.T) {
	body := bigBody(32 << 20) // more than loopback's socket buffers hold
	us := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(us.Close)
	e := newLimitEnv(t, us.URL, policy(), memory.New(0), gateway.Options{WriteTimeout: 200 * time.Millisecond}, nil)
	events := e.gw.Events().Subscribe(16)
	defer events.Close()

	// stall sends a GET for path and never reads the answer.
	stall := func(path string) {
		c, err := net.Dial("tcp", e.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "GET /fetch/up%s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	}
	answered := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev := <-events.C():
				if ev.Cache == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %s answer ended", want)
			}
		}
	}

	stall("/big")
	answered("MISS")
	waitFor(t, "the entry to be stored", func() bool { return len(e.entries()) == 1 })

	stall("/big")
	answered("HIT")
}
