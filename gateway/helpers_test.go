package gateway_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/mongo"
	"github.com/cachegate/cachegate/backends/mongo/mongotest"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/web/fastlane"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// clock is a settable clock for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is a gateway in front of one upstream, served over real HTTP.
type env struct {
	t        testing.TB
	gw       *gateway.Gateway
	srv      *httptest.Server
	backend  cache.Backend
	clock    *clock
	upstream *httptest.Server
	lane     *fastlane.Listener // in front of srv
}

// counting wraps a handler and counts the requests it sees.
type counting struct {
	h http.Handler
	n atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

// testBackend opens the backend the gateway tests run on: a SQLite file by
// default, the product's default; CACHEGATE_TEST_BACKEND=memory or =mongo
// (FerretDB in-process, or CACHEGATE_TEST_MONGODB_URI) picks another; make
// test runs all three.
func testBackend(t testing.TB) cache.Backend {
	t.Helper()
	switch kind := os.Getenv("CACHEGATE_TEST_BACKEND"); kind {
	case "", "sqlite":
		b, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "gateway.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	case "memory":
		return memory.New(0)
	case "mongo":
		b, err := mongo.Open(context.Background(), mongotest.URI(t))
		if err != nil {
			t.Fatal(err)
		}
		return b
	default:
		t.Fatalf("CACHEGATE_TEST_BACKEND=%q: want sqlite, memory or mongo", kind)
		return nil
	}
}

func httpbinHandler() http.Handler { return httpbin.New().Handler() }

// newEnv starts upstream (httpbin when nil) and a gateway with policy p in
// front of it, as upstream "up".
func newEnv(t testing.TB, p cache.Policy, upstream http.Handler, backend cache.Backend) *env {
	t.Helper()
	return newEnvOpts(t, gateway.Options{}, p, upstream, backend)
}

// newEnvOpts is newEnv with gateway options; the clock is always the env's.
func newEnvOpts(t testing.TB, opts gateway.Options, p cache.Policy, upstream http.Handler, backend cache.Backend) *env {
	t.Helper()
	if upstream == nil {
		upstream = httpbinHandler()
	}
	if backend == nil {
		backend = testBackend(t)
	}
	us := httptest.NewServer(upstream)
	t.Cleanup(us.Close)
	u, _ := url.Parse(us.URL)
	c := newClock()
	opts.Now = c.Now
	g, err := gateway.New(opts, gateway.Upstream{
		Name: "up", URL: u, Policy: p, Backend: backend, BackendName: "default", Timeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, lane := serveThroughLane(t, g, backend)
	return &env{t: t, gw: g, srv: srv, backend: backend, clock: c, upstream: us, lane: lane}
}

// serveThroughLane serves g as the server does: hits the backend holds in
// memory are answered from Lookup by the lane, the rest by ServeHTTP. The
// test's cleanup closes the server, g and backend.
func serveThroughLane(t testing.TB, g *gateway.Gateway, backend cache.Backend) (*httptest.Server, *fastlane.Listener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(g)
	lane := fastlane.Attach(srv.Config, srv.Listener, fastlane.Options{Prefix: "/fetch/", Lookup: g.Lookup})
	srv.Listener = lane
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		backend.Close()
	})
	return srv, lane
}

type result struct {
	status int
	header http.Header
	body   string
}

func (r result) xcache() string { return r.header.Get("X-Cache") }

// do sends a request through the gateway; path is below /fetch/up.
func (e *env) do(method, path string, header ...string) result {
	e.t.Helper()
	return e.doBody(method, path, nil, header...)
}

func (e *env) doBody(method, path string, body io.Reader, header ...string) result {
	e.t.Helper()
	return e.roundTrip(http.DefaultTransport, method, path, body, header...)
}

// roundTrip sends one request through the gateway by transport t.
func (e *env) roundTrip(t http.RoundTripper, method, path string, body io.Reader, header ...string) result {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+"/fetch/up"+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// get is do("GET", ...) that also checks the X-Cache outcome.
func (e *env) get(path, wantCache string, header ...string) result {
	e.t.Helper()
	r := e.do(http.MethodGet, path, header...)
	if got := r.xcache(); got != wantCache {
		e.t.Fatalf("GET %s: X-Cache = %q, want %q (status %d, Cache-Status %q, body %.200s)", path, got, wantCache, r.status, r.header.Get("Cache-Status"), r.body)
	}
	return r
}

// entries lists everything stored.
func (e *env) entries() []*cache.Entry {
	e.t.Helper()
	p, err := e.backend.List(context.Background(), cache.Query{Limit: cache.MaxLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Entries
}

func policy(mut ...func(*cache.Policy)) cache.Policy {
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	for _, m := range mut {
		m(&p)
	}
	return p
}

func rfc(p *cache.Policy) { p.Mode = cache.ModeRFC9111 }

// overrides lets every client use the per-request control headers.
func overrides(p *cache.Policy) { p.ClientOverrides = true }
