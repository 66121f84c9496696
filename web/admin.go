package web

import (
	"net"
	"net/http"

	"github.com/cachegate/cachegate/metrics"

	"github.com/cachegate/cachegate/handlers"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// mountAdmin mounts the admin API under /api, the sign-in routes and the
// profiler, all behind the admin side's guard (handlers/guard.go). When
// the server listens beyond loopback without a token, s.adminOff is set
// and every admin request answers 403 with it: the routes still exist so
// clients get an error saying how to turn the admin side on.
func (s *Server) mountAdmin(r chi.Router) {
	s.admin = handlers.NewAPI(s.log, s.gateway, handlers.Options{
		Backends: s.backends,
		DSNs:     s.dsns,
		Token:    s.cfg.AdminToken,
		Disabled: s.adminOff,
		Reload:   s.reloader(),

		AdminHosts:     s.cfg.AdminHosts,
		ListenHost:     listenHost(s.cfg.Listen),
		TrustedProxies: s.cfg.TrustedProxies,
	})
	s.admin.Mount(r)
	s.admin.MountSignIn(r)
	s.admin.MountEvents(r)
	// The Go profiler, behind the admin token: how the hot path was
	// measured, and how an operator finds where the time goes.
	r.Mount("/debug", s.admin.Protect(middleware.Profiler()))
	// Prometheus reads /metrics with the token, or from loopback.
	r.Handle("/metrics", s.admin.Protect(s.metrics()))
	s.admin.MountPages(r)
}

// metrics is the /metrics handler over the gateway, the backends and the
// admin side's jobs.
func (s *Server) metrics() http.Handler {
	return metrics.Handler(metrics.Options{Gateway: s.gateway, Backends: s.admin.UniqueBackends(), Jobs: s.admin.Jobs()})
}

// reloader is Reload for the admin API, nil when there is no
// configuration to read again.
func (s *Server) reloader() func() error {
	if s.cfg.Load == nil {
		return nil
	}
	return s.Reload
}

// closeAdmin stops the admin side's running jobs, before the backends they
// use are closed.
func (s *Server) closeAdmin() {
	if s.admin != nil {
		s.admin.Close()
	}
}

// Admin returns the admin API, for the dashboard and tests that watch its
// jobs.
func (s *Server) Admin() *handlers.API { return s.admin }

// listenHost is the host part of a listen address ("" for ":8080").
func listenHost(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	return host
}
