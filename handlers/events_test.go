package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/cachegate/cachegate/jobs"
	"github.com/cachegate/cachegate/web"
	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"
)

// wsEnv is the gateway and the admin side over a memory backend, served
// over real HTTP with /ws mounted, in front of a real upstream.
type wsEnv struct {
	tb  testing.TB
	api *handlers.API
	srv *httptest.Server
	// gate, when revalidating is set, hands out one token per upstream
	// request, so a test can hold a job half way.
	gate         chan struct{}
	revalidating atomic.Bool
}

func newWSEnv(tb testing.TB, opts handlers.EventOptions) *wsEnv {
	tb.Helper()
	e := &wsEnv{tb: tb, gate: make(chan struct{})}
	quit := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.revalidating.Load() {
			select {
			case <-e.gate:
			case <-quit:
				http.Error(w, "test over", http.StatusServiceUnavailable)
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	}))
	tb.Cleanup(up.Close)
	tb.Cleanup(func() { close(quit) }) // runs first: frees held upstream calls
	u, _ := url.Parse(up.URL)
	backend := memory.New(0)
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.IgnoredParameters = []string{"api_key"}
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "up", URL: u, Policy: p, Backend: backend, BackendName: "default", Timeout: 5 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	e.api = handlers.NewAPI(nil, gw, handlers.Options{Backends: map[string]cache.Backend{"default": backend}, Events: opts})
	r := chi.NewRouter()
	r.Handle("/fetch/*", gw)
	e.api.Mount(r)
	e.api.MountEvents(r)
	e.srv = httptest.NewServer(r)
	tb.Cleanup(func() {
		e.srv.Close()
		e.api.Close()
		gw.Close()
		backend.Close()
	})
	return e
}

// fetch sends a GET through the gateway and checks the status and X-Cache.
func (e *wsEnv) fetch(path, wantCache string) {
	e.tb.Helper()
	resp, err := http.Get(e.srv.URL + "/fetch/up" + path)
	if err != nil {
		e.tb.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != wantCache {
		e.tb.Fatalf("GET %.80s: %d, X-Cache %q; want 200, %s", path, resp.StatusCode, resp.Header.Get("X-Cache"), wantCache)
	}
}

func (e *wsEnv) wsURL() string { return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws" }

// dial opens /ws as a page of this server would.
func (e *wsEnv) dial(d *websocket.Dialer) *websocket.Conn {
	e.tb.Helper()
	if d == nil {
		d = &websocket.Dialer{}
	}
	conn, resp, err := d.Dial(e.wsURL(), http.Header{"Origin": {e.srv.URL}})
	if err != nil {
		e.tb.Fatalf("dial /ws: %v (%v)", err, resp)
	}
	e.tb.Cleanup(func() { conn.Close() })
	return conn
}

// wsMessage is any message /ws sends.
type wsMessage struct {
	Type       string          `json:"type"`
	Job        json.RawMessage `json:"job"`
	Stats      *gateway.Snapshot
	Requests   []gateway.Event
	Skipped    int64
	Subscribed []string
	Error      string
	Code       string
}

// wsRead reads the next message; the deadline only keeps a broken test from
// hanging.
func wsRead(tb testing.TB, conn *websocket.Conn) wsMessage {
	tb.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	typ, data, err := conn.ReadMessage()
	if err != nil {
		tb.Fatalf("read /ws: %v", err)
	}
	if typ != websocket.TextMessage {
		tb.Fatalf("message type %d, want text", typ)
	}
	var m wsMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		tb.Fatalf("message %s: not {\"type\": ...} JSON: %v", data, err)
	}
	return m
}

// wsReadType skips messages until one of type typ.
func wsReadType(tb testing.TB, conn *websocket.Conn, typ string) wsMessage {
	tb.Helper()
	for {
		if m := wsRead(tb, conn); m.Type == typ {
			return m
		}
	}
}

func wsSubscribe(tb testing.TB, conn *websocket.Conn, topics ...string) {
	tb.Helper()
	if topics == nil {
		topics = []string{} // null is not a list
	}
	if err := conn.WriteJSON(map[string][]string{"subscribe": topics}); err != nil {
		tb.Fatal(err)
	}
}

// TestEventsJobProgress: a client sees a real bulk revalidation start, make
// progress while the job is held half way, and end done, each job message
// in the shape of GET /api/jobs/{id}.
func TestEventsJobProgress(t *testing.T) {
	e := newWSEnv(t, handlers.EventOptions{})
	const n, half = 12, 5
	for i := 0; i < n; i++ {
		e.fetch("/item/"+strconv.Itoa(i), "MISS")
	}
	conn := e.dial(nil)
	if m := wsRead(t, conn); m.Type != "subscribed" || !reflect.DeepEqual(m.Subscribed, []string{"jobs", "stats"}) {
		t.Fatalf("first message %+v; want subscribed to jobs and stats", m)
	}
	if m := wsReadType(t, conn, "stats"); m.Stats == nil || m.Stats.Upstreams["up"].Requests != n {
		t.Fatalf("stats message %+v; want %d requests of upstream up", m.Stats, n)
	}

	e.revalidating.Store(true)
	resp, err := http.Post(e.srv.URL+"/api/revalidate?backend=default", "application/json", strings.NewReader(`{"concurrency": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	var started jobs.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&started); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/revalidate: %d, %v", resp.StatusCode, err)
	}
	resp.Body.Close()

	// next returns the next snapshot of the job, checking it on the way.
	var last jobs.Snapshot
	next := func() (jobs.Snapshot, json.RawMessage) {
		t.Helper()
		for {
			m := wsReadType(t, conn, "job")
			var s jobs.Snapshot
			if err := json.Unmarshal(m.Job, &s); err != nil {
				t.Fatalf("job message %s: %v", m.Job, err)
			}
			if s.ID != started.ID {
				continue
			}
			if s.Kind != "revalidate" || s.Target != "default" || s.Done < last.Done || (s.Total != 0 && s.Done+s.Failed > s.Total) {
				t.Fatalf("job message %s after %+v", m.Job, last)
			}
			last = s
			return s, m.Job
		}
	}
	for i := 0; i < half; i++ {
		e.gate <- struct{}{}
	}
	for s, _ := next(); s.Done < half; s, _ = next() {
		if s.State != jobs.Running {
			t.Fatalf("job ended while held at %d: %+v", half, s)
		}
	}
	if last.State != jobs.Running || last.Done != half || last.Total != n {
		t.Fatalf("held job shows %+v; want running, %d of %d done", last, half, n)
	}
	e.revalidating.Store(false)
	close(e.gate)
	var final json.RawMessage
	for s, raw := next(); ; s, raw = next() {
		if s.State != jobs.Running {
			final = raw
			break
		}
	}
	if last.State != jobs.Done || last.Done != n || last.Failed != 0 || last.Finished == nil {
		t.Fatalf("final job message %s; want done, %d done", final, n)
	}

	resp, err = http.Get(e.srv.URL + "/api/jobs/" + started.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var viaWS, viaAPI map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&viaAPI); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(final, &viaWS); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(viaWS, viaAPI) {
		t.Fatalf("final job message\n%v\nGET /api/jobs/%s\n%v", viaWS, started.ID, viaAPI)
	}
}

// TestEventsJobsAsked: a page that was offline while a job it watches
// ended asks for it over the socket (it has no bearer token for
// /api/jobs) and gets the job as GET /api/jobs/{id} shows it, or
// job_not_found for one the server does not know; its topics stay.
func TestEventsJobsAsked(t *testing.T) {
	e := newWSEnv(t, handlers.EventOptions{})
	e.fetch("/one", "MISS")
	e.fetch("/two", "MISS")
	resp, err := http.Post(e.srv.URL+"/api/revalidate", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var started jobs.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&started); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /api/revalidate: %d, %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	j, err := e.api.Jobs().Get(started.ID)
	if err != nil {
		t.Fatal(err)
	}
	<-j.Done()

	conn := e.dial(nil)
	if m := wsRead(t, conn); m.Type != "subscribed" {
		t.Fatalf("first message %+v", m)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"jobs": ["`+started.ID+`", "nosuchjob"]}`)); err != nil {
		t.Fatal(err)
	}
	m := wsReadType(t, conn, "job")
	var viaWS, viaAPI map[string]any
	if err := json.Unmarshal(m.Job, &viaWS); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(e.srv.URL + "/api/jobs/" + started.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&viaAPI); err != nil {
		t.Fatal(err)
	}
	if viaWS["state"] != "done" || !reflect.DeepEqual(viaWS, viaAPI) {
		t.Fatalf("asked-for job\n%v\nGET /api/jobs/%s\n%v", viaWS, started.ID, viaAPI)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var gone struct {
		Type  string `json:"type"`
		JobID string `json:"job_id"`
	}
	for gone.Type != "job_not_found" {
		if err := conn.ReadJSON(&gone); err != nil {
			t.Fatal(err)
		}
	}
	if gone.JobID != "nosuchjob" {
		t.Fatalf("job_not_found for %q, want nosuchjob", gone.JobID)
	}
	// Asking changed no topic: stats still come.
	wsReadType(t, conn, "stats")
}

// TestEventsOrigin: only this server's own pages, or clients that send no
// Origin at all, may open /ws; the rest get 403 before any upgrade. (A
// page behind a proxy is TestSameOrigin's: whether a proxy is trusted is
// the guard's configuration.)
func TestEventsOrigin(t *testing.T) {
	e := newWSEnv(t, handlers.EventOptions{})
	host := strings.TrimPrefix(e.srv.URL, "http://")
	for _, tc := range []struct {
		name              string
		origin            string
		want              int
		fwdProto, fwdHost string // what a reverse proxy in front says
	}{
		{"same origin", e.srv.URL, http.StatusSwitchingProtocols, "", ""},
		{"same origin, upper case", "HTTP://" + strings.ToUpper(host), http.StatusSwitchingProtocols, "", ""},
		{"no origin", "", http.StatusSwitchingProtocols, "", ""},
		{"other site", "http://evil.example", http.StatusForbidden, "", ""},
		{"other port", "http://127.0.0.1:1", http.StatusForbidden, "", ""},
		{"other scheme", "https://" + host, http.StatusForbidden, "", ""},
		{"sandboxed frame", "null", http.StatusForbidden, "", ""},
		{"subdomain trick", "http://" + host + ".evil.example", http.StatusForbidden, "", ""},
		{"another site behind a proxy", "https://evil.example", http.StatusForbidden, "https", "cache.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			if tc.fwdProto != "" {
				h.Set("X-Forwarded-Proto", tc.fwdProto)
				h.Set("X-Forwarded-Host", tc.fwdHost)
			}
			conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(), h)
			if conn != nil {
				conn.Close()
			}
			if resp == nil {
				t.Fatalf("no answer: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("Origin %q: status %d, want %d (%v)", tc.origin, resp.StatusCode, tc.want, err)
			}
			if tc.want == http.StatusForbidden {
				// The guard in front may refuse first, in its own words;
				// either way the answer names the origin refused.
				body, _ := io.ReadAll(resp.Body)
				if !strings.Contains(string(body), tc.origin) {
					t.Fatalf("403 body %q does not name the origin %q", body, tc.origin)
				}
			}
		})
	}

	resp, err := http.Get(e.srv.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Error, Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusBadRequest || body.Code != "not_websocket" {
		t.Fatalf("plain GET /ws: %d %+v %v; want 400 not_websocket", resp.StatusCode, body, err)
	}
}

// TestEventsSlowClientIsDropped: a client that subscribes to everything
// and never reads fills its buffer and is dropped, while every hit through
// the gateway completes; the gateway never waits for it.
func TestEventsSlowClientIsDropped(t *testing.T) {
	// Batches of 100 long URLs fill the socket quickly.
	e := newWSEnv(t, handlers.EventOptions{SendBuffer: 8, WriteWait: 2 * time.Second, StatsInterval: 5 * time.Millisecond, MaxBatch: 100})
	conn := e.dial(nil)
	wsSubscribe(t, conn, "jobs", "stats", "requests")
	path := "/long/" + strings.Repeat("x", 4000)
	e.fetch(path, "MISS")
	const maxHits = 20000
	hits := 0
	for ; e.api.EventCounts().Dropped == 0; hits++ {
		if hits == maxHits {
			t.Fatalf("%d hits and the client that never reads is still connected: %+v", hits, e.api.EventCounts())
		}
		e.fetch(path, "HIT")
	}
	for i := 0; i < 50; i++ {
		e.fetch(path, "HIT")
	}
	t.Logf("dropped after %d hits: %+v", hits, e.api.EventCounts())

	// Reading now drains what the socket held, then the socket ends.
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := conn.ReadMessage(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the dropped client's socket stayed open: %v", err)
			}
			// The close frame says why when it got through; a writer
			// stuck on the full socket can keep it out (1006).
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code != websocket.CloseAbnormalClosure &&
				(ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "too slow")) {
				t.Fatalf("closed with %d %q; want %d and a reason", ce.Code, ce.Text, websocket.ClosePolicyViolation)
			}
			t.Logf("socket ended: %v", err)
			break
		}
	}
}

// TestEventsPingKeepsIdleClientAlive: a client that only answers pings
// stays connected well past the read deadline; one that does not answer
// is disconnected.
func TestEventsPingKeepsIdleClientAlive(t *testing.T) {
	// pongWait leaves room for a busy machine to be late with a pong.
	const interval, pongWait, pings = 50 * time.Millisecond, time.Second, 30
	e := newWSEnv(t, handlers.EventOptions{PingInterval: interval, PongWait: pongWait})

	t.Run("answering", func(t *testing.T) {
		conn := e.dial(nil)
		got := make(chan struct{}, pings)
		conn.SetPingHandler(func(data string) error {
			select {
			case got <- struct{}{}:
			default:
			}
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		wsSubscribe(t, conn)              // nothing: only pings arrive
		wsReadType(t, conn, "subscribed") // the defaults
		if m := wsReadType(t, conn, "subscribed"); m.Subscribed == nil || len(m.Subscribed) != 0 {
			t.Fatalf("subscribed to nothing: %+v", m)
		}
		msgs := make(chan wsMessage, 16)
		errc := make(chan error, 1)
		go func() {
			for {
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := conn.ReadMessage()
				if err != nil {
					errc <- err
					return
				}
				var m wsMessage
				_ = json.Unmarshal(data, &m)
				msgs <- m
			}
		}()
		// pings*interval is well past pongWait: only pongs kept it open.
		for i := 0; i < pings; i++ {
			select {
			case <-got:
			case err := <-errc:
				t.Fatalf("disconnected after %d pings: %v", i, err)
			}
		}
		wsSubscribe(t, conn, "stats")
		for {
			select {
			case m := <-msgs:
				if m.Type == "stats" {
					return
				}
			case err := <-errc:
				t.Fatalf("disconnected after %d pings: %v", pings, err)
			}
		}
	})

	t.Run("silent", func(t *testing.T) {
		conn := e.dial(nil)
		conn.SetPingHandler(func(string) error { return nil }) // no pong
		for {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := conn.ReadMessage(); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("a client that never answered pings is still connected: %v", err)
				}
				return
			}
		}
	})
}

// TestEventsSubscriptions: a client picks its topics; request events carry
// the redacted URL; a bad message gets an error and the socket stays.
func TestEventsSubscriptions(t *testing.T) {
	e := newWSEnv(t, handlers.EventOptions{})
	conn := e.dial(nil)
	wsRead(t, conn) // subscribed, defaults

	for _, tc := range []struct {
		name, msg, want string
	}{
		{"unknown topic", `{"subscribe": ["jobs", "secrets"]}`, `unknown topic "secrets"`},
		{"not a subscription", `{"unsubscribe": ["jobs"]}`, `{"subscribe": [topics]}`},
		{"not JSON", `jobs`, `{"subscribe": [topics]}`},
		{"null", `{"subscribe": null}`, `{"subscribe": [topics]}`},
		{"two messages in one", `{"subscribe": []} {"subscribe": ["jobs"]}`, `{"subscribe": [topics]}`},
		{"too many jobs", `{"jobs": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}`, `at most 16 job ids`},
		{"jobs not a list", `{"jobs": "abc"}`, `{"jobs": [job ids]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			m := wsReadType(t, conn, "error")
			if m.Code != "bad_message" || !strings.Contains(m.Error, tc.want) {
				t.Fatalf("error message %+v; want code bad_message and %q", m, tc.want)
			}
		})
	}

	wsSubscribe(t, conn, "requests")
	if m := wsReadType(t, conn, "subscribed"); !reflect.DeepEqual(m.Subscribed, []string{"requests"}) {
		t.Fatalf("subscribed %v, want [requests]", m.Subscribed)
	}
	e.fetch("/secret?api_key=hunter2&q=1", "MISS")
	m := wsRead(t, conn)
	if m.Type != "requests" || len(m.Requests) != 1 || m.Skipped != 0 {
		t.Fatalf("after a fetch, %+v; want a batch of its one request event and nothing else", m)
	}
	r := m.Requests[0]
	if r.Type != "request" || r.Upstream != "up" || r.Method != http.MethodGet || r.Cache != "MISS" || r.Status != http.StatusOK || r.Bytes == 0 {
		t.Fatalf("request event %+v", r)
	}
	if strings.Contains(r.URL, "hunter2") || !strings.Contains(r.URL, "q=1") {
		t.Fatalf("request event URL %q: want the ignored parameter redacted", r.URL)
	}
}

// TestEventsBusyTailIsBatched: under more requests than a batch holds, a
// reading client gets batches of at most MaxBatch, each event either in
// one or counted as skipped, and stays connected.
func TestEventsBusyTailIsBatched(t *testing.T) {
	const maxBatch = 10
	e := newWSEnv(t, handlers.EventOptions{SendBuffer: 4, MaxBatch: maxBatch})
	conn := e.dial(nil)
	wsSubscribe(t, conn, "requests")
	wsReadType(t, conn, "subscribed")
	wsReadType(t, conn, "subscribed")
	batches := make(chan wsMessage, 1024)
	errc := make(chan error, 1)
	go func() {
		for {
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := conn.ReadMessage()
			if err != nil {
				errc <- err
				return
			}
			var m wsMessage
			_ = json.Unmarshal(data, &m)
			if m.Type == "requests" {
				batches <- m
			}
		}
	}()
	sent := 1
	e.fetch("/busy", "MISS")
	for ; sent < 2000; sent++ {
		e.fetch("/busy", "HIT")
	}
	var got, skipped, n int
	for got+skipped < sent {
		select {
		case m := <-batches:
			n++
			got += len(m.Requests)
			skipped += int(m.Skipped)
			if len(m.Requests) > maxBatch {
				t.Fatalf("a batch of %d events; MaxBatch is %d", len(m.Requests), maxBatch)
			}
		case err := <-errc:
			t.Fatalf("a reading client was disconnected: %v (%+v)", err, e.api.EventCounts())
		}
		if len(batches) == 0 && got+skipped < sent {
			// What a client missed is told with its next batch: make one.
			e.fetch("/busy", "HIT")
			sent++
		}
	}
	if got+skipped != sent || got == 0 || e.api.EventCounts().Dropped != 0 {
		t.Fatalf("%d requests: %d events in %d batches, %d skipped, %+v", sent, got, n, skipped, e.api.EventCounts())
	}
	t.Logf("%d requests: %d events in %d batches, %d skipped", sent, got, n, skipped)
}

// TestEventsThroughServer: /ws works through the whole server, fast lane
// in front, and a shutdown tells connected clients it is going away.
func TestEventsThroughServer(t *testing.T) {
	srv, err := web.Open(context.Background(), web.Config{
		Listen: "127.0.0.1:0", Backend: "memory://", ExpireAfter: cache.Expiry(time.Hour),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL(), "http")+"/ws", http.Header{"Origin": {srv.URL()}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	if m := wsRead(t, conn); m.Type != "subscribed" {
		t.Fatalf("first message %+v", m)
	}
	if m := wsReadType(t, conn, "stats"); m.Stats == nil {
		t.Fatalf("stats message without stats")
	}
	if got := srv.Admin().EventCounts().Clients; got != 1 {
		t.Fatalf("%d clients counted, want 1", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("after shutdown: %v; want close 1001", err)
		}
		break
	}
}

// TestEventsRefusals: past MaxClients a handshake gets 503, and with the
// admin side off /ws is off too; both before any upgrade, with a reason.
func TestEventsRefusals(t *testing.T) {
	t.Run("too many clients", func(t *testing.T) {
		e := newWSEnv(t, handlers.EventOptions{MaxClients: 2})
		for i := 0; i < 2; i++ {
			wsReadType(t, e.dial(nil), "subscribed")
		}
		conn, resp, err := websocket.DefaultDialer.Dial(e.wsURL(), nil)
		if conn != nil {
			conn.Close()
			t.Fatal("a third client was let in past MaxClients 2")
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("third client: %v, %v; want 503", resp, err)
		}
		var body struct{ Error, Code string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Code != "too_many_clients" {
			t.Fatalf("503 body %+v, %v", body, err)
		}
	})
	t.Run("admin side off", func(t *testing.T) {
		const why = "the admin API is off: testing"
		gw, err := gateway.New(gateway.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer gw.Close()
		api := handlers.NewAPI(nil, gw, handlers.Options{Backends: map[string]cache.Backend{"default": memory.New(0)}, Disabled: why})
		defer api.Close()
		r := chi.NewRouter()
		api.MountEvents(r)
		srv := httptest.NewServer(r)
		defer srv.Close()
		conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
		if conn != nil {
			conn.Close()
			t.Fatal("/ws upgraded with the admin side off")
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%v, %v; want 403", resp, err)
		}
		if body, _ := io.ReadAll(resp.Body); !strings.Contains(string(body), why) {
			t.Fatalf("403 body %q does not say why", body)
		}
	})
}
