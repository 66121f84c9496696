package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// logLines is an io.Writer for a slog handler that hands each line over
// on a channel: the gateway writes a request's line after its answer has
// gone out, so a test waits for the line rather than reading a buffer.
type logLines struct {
	mu  sync.Mutex // protects all
	all []string
	c   chan string
}

func newLogLines() *logLines { return &logLines{c: make(chan string, 1000)} }

func (l *logLines) Write(b []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		l.mu.Lock()
		l.all = append(l.all, line)
		l.mu.Unlock()
		l.c <- line
	}
	return len(b), nil
}

// next returns the next line, as a JSON object, and the line itself.
func (l *logLines) next(tb testing.TB) (map[string]any, string) {
	tb.Helper()
	line := l.nextRaw(tb)
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		tb.Fatalf("log line is not JSON: %v\n%s", err, line)
	}
	return m, line
}

// nextRaw waits for the next line.
func (l *logLines) nextRaw(tb testing.TB) string {
	tb.Helper()
	select {
	case line := <-l.c:
		return line
	case <-time.After(5 * time.Second):
		tb.Fatal("no access log line")
		return ""
	}
}

// none checks that no line is waiting. Lines are written before
// ServeHTTP or Answer.Done returns, so after direct calls nothing is late.
func (l *logLines) none(tb testing.TB) {
	tb.Helper()
	select {
	case line := <-l.c:
		tb.Fatalf("unexpected access log line %s", line)
	default:
	}
}

func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// accessEnv is a gateway whose access log goes, as JSON, to the returned
// lines.
func accessEnv(t *testing.T, o gateway.AccessLogOptions, p cache.Policy, upstream http.Handler, backend cache.Backend) (*env, *logLines) {
	t.Helper()
	lines := newLogLines()
	o.Logger = slog.New(slog.NewJSONHandler(lines, nil))
	return newEnvOpts(t, gateway.Options{AccessLog: o}, p, upstream, backend), lines
}

// wantFields checks the fields of a line.
func wantFields(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v (%T), want %v; line %v", k, m[k], m[k], v, m)
		}
	}
}

// A request that carries a bearer token, a cookie and an ignored
// parameter gets a line with its outcome, status, size and ID, and with
// none of those secrets; its hit, through ServeHTTP and through the fast
// lane, gets one too.
func TestAccessLogHasNoSecrets(t *testing.T) {
	const (
		token  = "tok-5ecret-bearer"
		cookie = "c00kie-5ecret-value"
		param  = "param-5ecret-value"
	)
	backends := []struct {
		name string
		open func(t *testing.T) cache.Backend
	}{
		{"sqlite", func(t *testing.T) cache.Backend { return testBackend(t) }},
		{"memory", func(*testing.T) cache.Backend { return memory.New(0) }}, // hits in the fast lane
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			p := policy(func(p *cache.Policy) { p.IgnoredParameters = []string{"access_token"} })
			e, lines := accessEnv(t, gateway.AccessLogOptions{}, p, nil, b.open(t))
			secrets := []string{"Authorization", "Bearer " + token, "Cookie", "session=" + cookie}
			path := "/get?a=1&access_token=" + param

			miss := e.get(path, "MISS", secrets...)
			m, _ := lines.next(t)
			wantFields(t, m, map[string]any{
				"msg": "request", "level": "INFO", "upstream": "up", "method": "GET",
				"url": e.upstream.URL + "/get?a=1&access_token=REDACTED", "cache": "MISS", "coalesced": false,
				"status": float64(200), "bytes": float64(len(miss.body)),
				"request_id": miss.header.Get(gateway.RequestIDHeader),
			})
			if id := miss.header.Get(gateway.RequestIDHeader); id == "" {
				t.Errorf("no %s on the answer", gateway.RequestIDHeader)
			}
			if l, ok := m["upstream_latency"].(float64); !ok || l <= 0 || l > m["latency"].(float64) {
				t.Errorf("upstream_latency %v, latency %v: want 0 < upstream_latency <= latency", m["upstream_latency"], m["latency"])
			}
			if _, ok := m["time"]; !ok {
				t.Errorf("no time in %v", m)
			}

			// ServeHTTP's hit on SQLite, the lane's on memory.
			hit := e.get(path, "HIT", secrets...)
			m, _ = lines.next(t)
			wantFields(t, m, map[string]any{"cache": "HIT", "status": float64(200), "bytes": float64(len(hit.body))})
			if id := hit.header.Get(gateway.RequestIDHeader); id != "" && m["request_id"] != id {
				t.Errorf("request_id %v, sent %q", m["request_id"], id)
			} else if id, _ := m["request_id"].(string); id == "" {
				t.Errorf("hit logged without a request ID: %v", m)
			}
			if _, ok := m["upstream_latency"]; ok {
				t.Errorf("a hit has an upstream_latency: %v", m)
			}

			// Without credentials, a memory backend's hit is the lane's;
			// it sends no ID yet, but logs one.
			e.get("/get?b=2&access_token="+param, "MISS")
			lines.next(t)
			e.get("/get?b=2&access_token="+param, "HIT")
			m, _ = lines.next(t)
			wantFields(t, m, map[string]any{"cache": "HIT", "url": e.upstream.URL + "/get?access_token=REDACTED&b=2"})
			if id, _ := m["request_id"].(string); id == "" {
				t.Errorf("lane hit logged without a request ID: %v", m)
			}

			all := lines.text()
			for _, secret := range []string{token, cookie, param} {
				if strings.Contains(all, secret) {
					t.Errorf("the access log holds the secret %q:\n%s", secret, all)
				}
			}
		})
	}
}

// A client's sane X-Request-Id is sent back and logged, by ServeHTTP and
// by Lookup; an insane one is replaced by a generated ID.
func TestAccessLogRequestID(t *testing.T) {
	e, lines := accessEnv(t, gateway.AccessLogOptions{}, policy(), nil, memory.New(0))
	r := e.get("/get", "MISS", "X-Request-Id", "client-42.a:b")
	if got := r.header.Get("X-Request-Id"); got != "client-42.a:b" {
		t.Errorf("X-Request-Id %q, want the client's", got)
	}
	m, _ := lines.next(t)
	wantFields(t, m, map[string]any{"request_id": "client-42.a:b", "cache": "MISS"})

	// The fast lane's hit logs the client's ID too.
	e.get("/get", "HIT", "X-Request-Id", "client-43")
	m, _ = lines.next(t)
	wantFields(t, m, map[string]any{"request_id": "client-43", "cache": "HIT"})

	seen := map[string]bool{}
	for _, bad := range []string{"has space", "quote\"d", strings.Repeat("x", 129), "new\tline", ""} {
		req := httptest.NewRequest("GET", "/fetch/up/get", nil)
		if bad != "" {
			req.Header.Set("X-Request-Id", bad)
		}
		w := httptest.NewRecorder()
		e.gw.ServeHTTP(w, req)
		got := w.Header().Get("X-Request-Id")
		if got == "" || got == bad || seen[got] {
			t.Errorf("X-Request-Id %q for the client's %q: want a new, generated one", got, bad)
		}
		seen[got] = true
		m, _ := lines.next(t)
		wantFields(t, m, map[string]any{"request_id": got})
	}
}

// The gateway's request ID replaces one the upstream sends, stored or not.
func TestRequestIDOverridesTheUpstreams(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "upstream-id")
		w.Write([]byte("ok"))
	})
	e, lines := accessEnv(t, gateway.AccessLogOptions{}, policy(), upstream, testBackend(t))
	for _, want := range []string{"MISS", "HIT"} {
		r := e.get("/x", want, "X-Request-Id", "mine-"+want)
		if got := r.header.Values("X-Request-Id"); len(got) != 1 || got[0] != "mine-"+want {
			t.Errorf("%s: X-Request-Id %q, want [mine-%s]", want, got, want)
		}
		m, _ := lines.next(t)
		wantFields(t, m, map[string]any{"request_id": "mine-" + want, "cache": want})
	}
}

// Mode errors logs errors only; off logs nothing; SampleHits logs one in
// N hits and every miss.
func TestAccessLogModes(t *testing.T) {
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte("ok"))
	})
	serve := func(e *env, path string) {
		w := httptest.NewRecorder()
		e.gw.ServeHTTP(w, httptest.NewRequest("GET", "/fetch/up"+path, nil))
	}
	t.Run("errors", func(t *testing.T) {
		e, lines := accessEnv(t, gateway.AccessLogOptions{Mode: gateway.AccessLogErrors}, policy(), failing, memory.New(0))
		serve(e, "/ok")
		serve(e, "/ok")
		lines.none(t)
		serve(e, "/fail")
		m, _ := lines.next(t)
		wantFields(t, m, map[string]any{"status": float64(502), "cache": "MISS"})
		w := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/fetch/up/uncached", nil)
		req.Header.Set("Cache-Control", "only-if-cached")
		e.gw.ServeHTTP(w, req)
		m, _ = lines.next(t)
		wantFields(t, m, map[string]any{"status": float64(504), "cache": "ERROR"})
		lines.none(t)
	})
	t.Run("off", func(t *testing.T) {
		e, lines := accessEnv(t, gateway.AccessLogOptions{Mode: gateway.AccessLogOff}, policy(), failing, memory.New(0))
		serve(e, "/ok")
		serve(e, "/ok")
		serve(e, "/fail")
		lines.none(t)
	})
	t.Run("sampled hits", func(t *testing.T) {
		e, lines := accessEnv(t, gateway.AccessLogOptions{SampleHits: 3}, policy(), failing, memory.New(0))
		serve(e, "/ok")
		m, _ := lines.next(t)
		wantFields(t, m, map[string]any{"cache": "MISS"})
		for i := 1; i <= 7; i++ {
			serve(e, "/ok")
			if i%3 == 0 {
				m, _ := lines.next(t)
				wantFields(t, m, map[string]any{"cache": "HIT"})
			}
			lines.none(t)
		}
		serve(e, "/fail")
		m, _ = lines.next(t)
		wantFields(t, m, map[string]any{"status": float64(502)})
	})
	t.Run("bad mode", func(t *testing.T) {
		_, err := gateway.New(gateway.Options{AccessLog: gateway.AccessLogOptions{Mode: "most"}})
		if err == nil || !strings.Contains(err.Error(), `"most"`) {
			t.Fatalf("New: %v, want an error naming the mode", err)
		}
	})
}

// looksUp is a real backend that tells when n lookups have been made.
type looksUp struct {
	cache.Backend // Get only: no Peek, no MemoryPeeker, so every lookup is a Get
	gets          atomic.Int64
	n             int64
	done          chan struct{}
}

func (b *looksUp) Get(ctx context.Context, key string) (*cache.Entry, bool, error) {
	e, ok, err := b.Backend.Get(ctx, key)
	if b.gets.Add(1) == b.n {
		close(b.done)
	}
	return e, ok, err
}

// The requests collapsed onto another's upstream call are logged as
// coalesced, without an upstream latency of their own; the leader with
// one.
func TestAccessLogCoalesced(t *testing.T) {
	const followers = 8
	backend := &looksUp{Backend: memory.New(0), n: 1 + followers, done: make(chan struct{})}
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-backend.done // every follower has looked and found nothing
		w.Write([]byte("answer"))
	})
	e, lines := accessEnv(t, gateway.AccessLogOptions{}, policy(), upstream, backend)
	var wg sync.WaitGroup
	for range 1 + followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.gw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/fetch/up/herd", nil))
		}()
	}
	wg.Wait()
	coalesced := e.gw.Stats().Snapshot().Upstreams["up"].Coalesced
	if coalesced == 0 {
		t.Fatal("no request was coalesced")
	}
	var logged int64
	for range 1 + followers {
		m, line := lines.next(t)
		_, timed := m["upstream_latency"]
		if m["coalesced"] == true {
			logged++
			if timed {
				t.Errorf("coalesced request with an upstream latency: %s", line)
			}
		}
		if m["cache"] != "MISS" {
			t.Errorf("cache %v, want MISS: %s", m["cache"], line)
		}
	}
	if logged != coalesced {
		t.Errorf("%d lines say coalesced, the gateway counted %d", logged, coalesced)
	}
}

// The text format (the default) writes the same fields as key=value.
func TestAccessLogText(t *testing.T) {
	lines := newLogLines()
	log := slog.New(slog.NewTextHandler(lines, nil))
	e := newEnvOpts(t, gateway.Options{AccessLog: gateway.AccessLogOptions{Logger: log}}, policy(), nil, memory.New(0))
	r := e.get("/get?x=1", "MISS", "Cookie", "k=secret-cookie")
	line := lines.nextRaw(t)
	for _, want := range []string{"msg=request", "upstream=up", "method=GET", `url="` + e.upstream.URL + `/get?x=1"`, "cache=MISS",
		"coalesced=false", "status=200", "bytes=" + strconv.Itoa(len(r.body)), "latency=", "upstream_latency=",
		"request_id=" + r.header.Get("X-Request-Id")} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "secret-cookie") {
		t.Errorf("line %q holds the cookie", line)
	}
}

// BenchmarkAccessLog measures what the access log costs a 1 KiB hit, on
// the production default (the hot tier over SQLite), through ServeHTTP
// and through Lookup: off, every hit as JSON or text to io.Discard, and
// one hit in 100.
func BenchmarkAccessLog(b *testing.B) {
	modes := []struct {
		name string
		opts func() gateway.AccessLogOptions
	}{
		{"off", func() gateway.AccessLogOptions { return gateway.AccessLogOptions{Mode: gateway.AccessLogOff} }},
		{"json", func() gateway.AccessLogOptions {
			return gateway.AccessLogOptions{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
		}},
		{"text", func() gateway.AccessLogOptions {
			return gateway.AccessLogOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		}},
		{"json-sample100", func() gateway.AccessLogOptions {
			return gateway.AccessLogOptions{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), SampleHits: 100}
		}},
	}
	body := strings.Repeat("x", 1<<10)
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, body)
	})
	for _, entry := range []string{"ServeHTTP", "Lookup"} {
		for _, m := range modes {
			b.Run(entry+"/"+m.name, func(b *testing.B) {
				cold, err := sqlite.Open("sqlite://" + filepath.Join(b.TempDir(), "bench.db"))
				if err != nil {
					b.Fatal(err)
				}
				e := newEnvOpts(b, gateway.Options{AccessLog: m.opts()}, policy(), up, tiered.New(cold, 64<<20, time.Second))
				e.get("/b?page=1", "MISS")
				req := httptest.NewRequest("GET", "/fetch/up/b?page=1", nil)
				hitLoop(b, e.gw, req, entry)
			})
		}
	}
}

// Requests refused before an upstream's rules apply are logged as ERROR,
// with their path and without their query, which could hold a secret.
func TestAccessLogRefused(t *testing.T) {
	p := policy(func(p *cache.Policy) { p.IgnoredParameters = []string{"access_token"} })
	e, lines := accessEnv(t, gateway.AccessLogOptions{Mode: gateway.AccessLogErrors}, p, nil, memory.New(0))
	for _, c := range []struct {
		name, method, target string
		header               []string
		status               int
	}{
		{"unknown upstream", "GET", "/fetch/nope/get?access_token=5ecret", nil, 404},
		{"bad path", "GET", "/fetch/up/%2e%2e/x?access_token=5ecret", nil, 400},
		{"trace", "TRACE", "/fetch/up/get?access_token=5ecret", nil, 405},
		{"bad token", "GET", "/fetch/up/get?access_token=5ecret", []string{"X-Cachegate-Token", "wrong-5ecret"}, 403},
	} {
		req := httptest.NewRequest(c.method, c.target, nil)
		for i := 0; i+1 < len(c.header); i += 2 {
			req.Header.Set(c.header[i], c.header[i+1])
		}
		w := httptest.NewRecorder()
		e.gw.ServeHTTP(w, req)
		if w.Code != c.status {
			t.Fatalf("%s: status %d, want %d", c.name, w.Code, c.status)
		}
		m, line := lines.next(t)
		wantFields(t, m, map[string]any{"cache": "ERROR", "status": float64(c.status), "method": c.method,
			"bytes": float64(w.Body.Len()), "request_id": w.Header().Get("X-Request-Id")})
		if strings.Contains(line, "5ecret") || !strings.HasPrefix(m["path"].(string), "/fetch/") {
			t.Errorf("%s: %s", c.name, line)
		}
	}
}

// An answer cut after its head went out (the upstream's body broke off)
// still gets its line, with the bytes that went out.
func TestAccessLogLinesForCutAnswers(t *testing.T) {
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "200000")
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 100000))
		w.(http.Flusher).Flush()
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	})
	e, lines := accessEnv(t, gateway.AccessLogOptions{}, policy(), upstream, memory.New(0))
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, _ := http.NewRequest(method, e.srv.URL+"/fetch/up/cut", nil)
		if resp, err := http.DefaultTransport.RoundTrip(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		m, line := lines.next(t)
		want := map[string]any{"method": method, "cache": map[string]string{http.MethodGet: "MISS", http.MethodPost: "BYPASS"}[method], "status": float64(200)}
		wantFields(t, m, want)
		if n, _ := m["bytes"].(float64); n <= 0 || n >= 200000 {
			t.Errorf("%s: bytes %v, want what went out of the 200000: %s", method, m["bytes"], line)
		}
	}
}
