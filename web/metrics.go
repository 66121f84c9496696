package web

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// metricsServer serves /metrics alone on Config.MetricsListen, without the
// admin guard: a scraper's address, which an operator keeps on a network
// of its own. Everything else answers 404 there.
type metricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// openMetrics listens on addr for the metrics server; nil when addr is "".
func (s *Server) openMetrics(addr string) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metrics())
	return &metricsServer{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}}, nil
}

// serve answers scrapes until close.
func (m *metricsServer) serve(log *slog.Logger) {
	if m == nil {
		return
	}
	if err := m.srv.Serve(m.ln); !errors.Is(err, http.ErrServerClosed) {
		log.Error("metrics server failed", "err", err)
	}
}

func (m *metricsServer) close() {
	if m != nil {
		m.srv.Close()
	}
}

// MetricsURL is the base URL of the metrics address, "" when there is none.
func (s *Server) MetricsURL() string {
	if s.metricsSrv == nil {
		return ""
	}
	return "http://" + s.metricsSrv.ln.Addr().String()
}
