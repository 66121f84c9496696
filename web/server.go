// Package web assembles cachegate: it opens the backends, builds the
// gateway, mounts it and the admin side on one chi router, and runs the
// HTTP server. Only this package (and cmd/) knows the concrete backends.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/handlers"
	"github.com/cachegate/cachegate/web/fastlane"
	"github.com/go-chi/chi/v5"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// Server is a running cachegate: gateway, admin side and their backends.
type Server struct {
	cfg      Config
	log      *slog.Logger
	backends map[string]cache.Backend
	dsns     map[string]string
	gateway  *gateway.Gateway
	router   http.Handler
	srv      *http.Server
	ln       net.Listener
	lane     *fastlane.Listener // nil when the fast lane is off
	demo     *http.Server
	demoAddr string // where the demo httpbin listens
	demoDial func(ctx context.Context, network, addr string) (net.Conn, error)
	adminOff string // why the admin side is off, empty when on
	held     int64  // MemoryByDesign
	admin    *handlers.API
	// metricsSrv serves /metrics on cfg.MetricsListen; nil without one.
	metricsSrv *metricsServer
	// reloadMu serializes reloads (SIGHUP, POST /api/reload) and protects
	// cfg's upstream rules, which they replace.
	reloadMu sync.Mutex
}

// Open opens the backends, builds the gateway and starts listening on
// cfg.Listen (":0" picks a free port; see URL). Serve then answers
// requests. On error everything opened so far is closed again.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, backends: map[string]cache.Backend{}, dsns: map[string]string{}}
	defer func() {
		if err != nil {
			s.closeBackends()
			if s.demo != nil {
				s.demo.Close()
			}
		}
	}()
	if err := s.openBackends(ctx); err != nil {
		return nil, err
	}
	if cfg.Demo {
		if err := s.startDemo(); err != nil {
			return nil, err
		}
	}
	ups, err := s.upstreams(s.cfg.Upstreams)
	if err != nil {
		return nil, err
	}
	inflight := cfg.MaxInflightBytes
	if inflight <= 0 {
		inflight = DefaultMaxInflightBytes()
	}
	s.held += inflight
	writeTimeout := orDefault(cfg.ClientWriteTimeout, DefaultClientWriteTimeout)
	s.gateway, err = gateway.New(gateway.Options{Logger: log, AdminToken: cfg.AdminToken, MaxInflightBytes: inflight, WriteTimeout: writeTimeout,
		AccessLog: gateway.AccessLogOptions{Logger: cfg.AccessLogger, Mode: cfg.AccessLog, SampleHits: cfg.AccessLogSampleHits}}, ups...)
	if err != nil {
		return nil, err
	}
	if !isLoopbackListen(cfg.Listen) && cfg.AdminToken == "" {
		s.adminOff = "the admin API is off: the server listens on " + cfg.Listen +
			", beyond this machine, and no admin token is set; set one with -admin-token, CACHEGATE_ADMIN_TOKEN or CACHEGATE_ADMIN_TOKEN_FILE"
		log.Warn("admin side disabled", "reason", s.adminOff)
	}
	s.router = s.anyMethodFetch(s.routes())
	s.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.gateway.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if s.metricsSrv, err = s.openMetrics(cfg.MetricsListen); err != nil {
		s.ln.Close()
		s.gateway.Close()
		return nil, err
	}
	// No WriteTimeout: it would cut every answer that takes longer, a
	// large download to a slow but live client included. The gateway sets
	// a deadline on each write of a streamed answer instead
	// (ClientWriteTimeout). ReadTimeout bounds reading a request only:
	// net/http lifts it once the body has been read.
	s.srv = &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: orDefault(cfg.ClientHeaderTimeout, DefaultClientHeaderTimeout),
		ReadTimeout:       orDefault(cfg.ClientReadTimeout, DefaultClientReadTimeout),
		IdleTimeout:       orDefault(cfg.ClientIdleTimeout, DefaultClientIdleTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if !cfg.NoFastLane {
		// Cache hits held in memory are answered before net/http parses
		// them; every other request goes through the router as usual.
		s.lane = fastlane.Attach(s.srv, s.ln, fastlane.Options{Prefix: "/fetch/", Lookup: s.gateway.Lookup, ChunkWriteTimeout: writeTimeout, Log: log})
		s.ln = s.lane
	}
	return s, nil
}

func (s *Server) openBackends(ctx context.Context) error {
	dsns := map[string]string{cache.DefaultBackendName: s.cfg.Backend}
	for name, dsn := range s.cfg.Backends {
		dsns[name] = dsn
	}
	// A DSN named twice is opened once: two SQLite handles on one file
	// would fight over its lock.
	byDSN := map[string]cache.Backend{}
	names := make([]string, 0, len(dsns))
	for n := range dsns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		dsn := dsns[name]
		b, ok := byDSN[dsn]
		if !ok {
			bname := name
			o, err := openBackend(ctx, dsn, func(key string, err error) {
				s.log.Error("cache store failed", "backend", bname, "key", key, "err", err)
			})
			if err != nil {
				return fmt.Errorf("backend %s: %w", name, err)
			}
			b = o.backend
			byDSN[dsn] = b
			s.held += o.held
		}
		s.backends[name] = b
		s.dsns[name] = RedactDSN(dsn)
	}
	return nil
}

// MemoryByDesign is the memory the server holds on purpose at most: the
// in-flight budget, the hot tiers with their write-behind queues, and
// in-memory backends. The process needs a base beyond it (the runtime,
// buffers per connection, SQLite's own caches).
func (s *Server) MemoryByDesign() int64 { return s.held }

func (s *Server) closeBackends() {
	closed := map[cache.Backend]bool{}
	for name, b := range s.backends {
		if closed[b] {
			continue
		}
		closed[b] = true
		if err := b.Close(); err != nil {
			s.log.Error("close backend", "backend", name, "err", err)
		}
	}
}

// startDemo runs an in-process httpbin on a loopback port and adds it as
// the upstream "demo", so the quick start needs no network. Its URL is
// always http://httpbin.demo (connections go to whatever port it got), so
// its cached entries keep their keys across restarts.
func (s *Server) startDemo() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo upstream: %w", err)
	}
	s.demo = &http.Server{Handler: httpbin.New().Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.demo.Serve(ln) }()
	s.demoAddr = ln.Addr().String()
	addr := s.demoAddr
	// One function for the life of the server: a reload gives the gateway
	// this same one, which it takes as reaching the same place.
	s.demoDial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	s.cfg.Upstreams = append(s.cfg.Upstreams, demoUpstream(s.cfg.ExpireAfter))
	return nil
}

// demoUpstream is the demo upstream's configuration under the server's
// default expiry.
func demoUpstream(expireAfter cache.Expiry) UpstreamConfig {
	p := cache.DefaultPolicy(expireAfter)
	// The README's examples set X-Cachegate-Expire-After on the demo: a
	// toy upstream on loopback has no shared policy worth protecting.
	p.ClientOverrides = true
	return UpstreamConfig{Name: "demo", URL: demoURL, Policy: p}
}

// demoURL is the demo upstream's fixed URL; see startDemo.
const demoURL = "http://httpbin.demo"

func (s *Server) upstreams(list []UpstreamConfig) ([]gateway.Upstream, error) {
	var ups []gateway.Upstream
	for _, uc := range list {
		u, err := url.Parse(uc.URL)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: url: %w", uc.Name, err)
		}
		bname := uc.Backend
		if bname == "" {
			bname = cache.DefaultBackendName
		}
		b, ok := s.backends[bname]
		if !ok {
			return nil, fmt.Errorf("upstream %s: backend %q is not configured", uc.Name, bname)
		}
		timeout := uc.Timeout
		if timeout <= 0 {
			timeout = DefaultUpstreamTimeout
		}
		up := gateway.Upstream{Name: uc.Name, URL: u, Policy: uc.Policy, Backend: b, BackendName: bname, Timeout: timeout,
			RevalidateHeaders: uc.RevalidateHeaders, ReadTimeout: uc.ReadTimeout, TotalTimeout: uc.TotalTimeout,
			KeyExpr: uc.KeyExpr, FilterExpr: uc.FilterExpr}
		if uc.Name == "demo" && uc.URL == demoURL && s.demoDial != nil {
			up.Dial = s.demoDial
		}
		ups = append(ups, up)
	}
	return ups, nil
}

// chiMethods are the methods chi routes; it answers any other with an
// empty 405 before a handler sees it.
var chiMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true,
	http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true, http.MethodTrace: true,
}

// anyMethodFetch sends a /fetch/ request with a method chi does not know
// (PURGE, M-SEARCH, any token) to the gateway as the /fetch/* route does, so the gateway decides about it (it forwards it
// uncached, and in rfc9111 mode it invalidates the URL, RFC 9111 section
// 4.4) rather than chi answering 405.
func (s *Server) anyMethodFetch(router http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !chiMethods[r.Method] && strings.HasPrefix(r.URL.Path, "/fetch/") {
			s.gateway.ServeHTTP(w, r)
			return
		}
		router.ServeHTTP(w, r)
	})
}

func (s *Server) routes() chi.Router {
	root := chi.NewRouter()
	// /fetch/* takes no chi middleware: the fast lane answers hits
	// without chi, so what every /fetch/ request needs (panic recovery,
	// request IDs, the access log, metrics) is the gateway's, for both
	// doors. TestFetchRouteHasNoMiddleware holds the line.
	root.Handle("/fetch/*", s.gateway)
	root.Group(func(r chi.Router) {
		r.Use(s.recoverer)
		r.Get("/healthz", handleAlive)
		r.Get("/readyz", s.handleReady)
		r.Handle("/fetch", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{
				"error": "gateway paths are /fetch/<upstream>/<path>; configured upstreams: " + strings.Join(s.upstreamNames(), ", "),
				"code":  "unknown_upstream",
			})
		}))
		s.mountAdmin(r)
	})
	return root
}

// recoverer turns a panic in a handler into a logged error and a JSON 500,
// so no panic reaches a user as a dropped connection or a stack trace.
// http.ErrAbortHandler is the deliberate way to cut a response whose
// headers are already sent, and passes through.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error", "code": "internal"})
		}()
		next.ServeHTTP(w, r)
	})
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func (s *Server) upstreamNames() []string {
	var names []string
	for _, u := range s.gateway.Upstreams() {
		names = append(names, u.Name)
	}
	return names
}

// handleAlive answers 200 while the process serves HTTP: a liveness probe
// that a backend being down must not fail (a restart would not bring it
// back, and /fetch/ keeps forwarding without it).
func handleAlive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "OK"})
}

// readyTimeout is how long /readyz waits for the backends' pings.
const readyTimeout = 2 * time.Second

// handleReady answers 200 when every backend that can be pinged answers
// within readyTimeout, 503 naming the failing ones otherwise: a load
// balancer's readiness probe.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	status := map[string]string{}
	code := http.StatusOK
	for name, b := range s.backends {
		status[name] = "ok"
		if p, ok := b.(cache.Pinger); ok {
			if err := p.Ping(ctx); err != nil {
				// The probe is open to everyone: the error, which can
				// name hosts and topology, goes to the log only.
				s.log.Warn("readyz: backend does not answer", "backend", name, "err", err)
				status[name] = "unavailable"
				code = http.StatusServiceUnavailable
			}
		}
	}
	writeJSON(w, code, map[string]any{"status": http.StatusText(code), "backends": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve answers requests until Close. It returns nil after a clean Close.
func (s *Server) Serve() error {
	go s.metricsSrv.serve(s.log)
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// URL returns the server's base URL, e.g. http://127.0.0.1:8080. When it
// listens on every interface, the URL names the loopback one.
func (s *Server) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	ip := addr.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// FastLaneAnswers returns how many requests the fast lane has answered
// before net/http (0 when it is off).
func (s *Server) FastLaneAnswers() int64 {
	if s.lane == nil {
		return 0
	}
	return s.lane.Answered()
}

// Gateway returns the running gateway.
func (s *Server) Gateway() *gateway.Gateway { return s.gateway }

// Backends returns the open backends by name ("default" included).
func (s *Server) Backends() map[string]cache.Backend { return s.backends }

// Close stops accepting requests, lets in-flight ones finish until ctx is
// done, then stops the gateway and closes the backends.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.lane != nil && err == nil {
		err = s.lane.WaitAnswers(ctx)
	}
	if err != nil {
		// Time is up: cut what is still running.
		s.srv.Close()
	}
	s.metricsSrv.close()
	s.closeAdmin()
	s.gateway.Close()
	if s.demo != nil {
		s.demo.Close()
	}
	s.closeBackends()
	return err
}

// isLoopbackListen reports whether a listen address only accepts
// connections from this machine.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
