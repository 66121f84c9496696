package web

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Reload reads the configuration again (Config.Load) and puts its upstream
// rules in force, all of them or, on any error, none: the running
// configuration stays, the error is logged and the gateway's ConfigStatus
// tells it. Connections and requests under way are not touched; a
// request that started before the reload finishes under the rules it
// started with.
//
// The upstreams (their URLs, rules, timeouts, backends and
// revalidate_headers) and the server's expire_after and mode they inherit
// may change. The settings the listeners, the backends and the admin
// side's guard were built from may not: a file that changes one is
// refused, naming it (see restartOnly).
func (s *Server) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	err := s.reload()
	if err != nil {
		s.log.Error("config reload failed, the running configuration stays", "err", err)
	}
	return err
}

// errNoConfigSource is Reload's error for a server whose Config has no
// Load function.
var errNoConfigSource = errors.New("reload: the server was started without a configuration to read again")

// reload does Reload's work; every failure is recorded in the gateway's
// ConfigStatus, by the gateway itself for the upstreams it refuses.
func (s *Server) reload() error {
	fail := func(err error) error {
		s.gateway.ReloadFailed(err)
		return err
	}
	if s.cfg.Load == nil {
		return fail(errNoConfigSource)
	}
	cfg, err := s.cfg.Load()
	if err != nil {
		return fail(fmt.Errorf("reload: %w", err))
	}
	if fields := restartOnly(s.cfg, cfg); len(fields) > 0 {
		return fail(fmt.Errorf("reload refused: %s changed, which takes a restart; nothing was reloaded", strings.Join(fields, ", ")))
	}
	list := cfg.Upstreams
	if s.cfg.Demo {
		list = append(slices.Clip(list), demoUpstream(cfg.ExpireAfter))
	}
	ups, err := s.upstreams(list)
	if err != nil {
		return fail(fmt.Errorf("reload: %w", err))
	}
	ch, err := s.gateway.Reload(ups...)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	s.cfg.Upstreams, s.cfg.ExpireAfter = list, cfg.ExpireAfter
	s.log.Info("config reloaded", "upstreams", len(ups), "added", ch.Added, "removed", ch.Removed, "changed", ch.Changed)
	return nil
}

// restartOnly names, as the config file does, the settings that differ
// between running and loaded and that a reload cannot change: the
// listeners, the backends (opened once; an upstream may move to another
// of them), the admin side's token, hosts and proxies (its guard is built
// at start; a token change by reload would also leave pages signed in
// with the old one), the demo, the server-wide budgets and timeouts, and
// the log settings.
// Values are not named: DSNs and the token are secrets.
func restartOnly(running, loaded Config) []string {
	var fields []string
	check := func(field string, same bool) {
		if !same {
			fields = append(fields, field)
		}
	}
	check("listen", running.Listen == loaded.Listen)
	check("metrics_listen", running.MetricsListen == loaded.MetricsListen)
	check("backend", running.Backend == loaded.Backend)
	check("backends", maps.Equal(running.Backends, loaded.Backends))
	check("admin_token", running.AdminToken == loaded.AdminToken)
	check("admin_hosts", slices.Equal(running.AdminHosts, loaded.AdminHosts))
	check("trusted_proxies", slices.Equal(running.TrustedProxies, loaded.TrustedProxies))
	check("demo", running.Demo == loaded.Demo)
	check("fast_lane", running.NoFastLane == loaded.NoFastLane)
	check("shutdown_timeout", running.ShutdownTimeout == loaded.ShutdownTimeout)
	check("max_inflight_bytes", running.MaxInflightBytes == loaded.MaxInflightBytes)
	check("client_header_timeout", running.ClientHeaderTimeout == loaded.ClientHeaderTimeout)
	check("client_read_timeout", running.ClientReadTimeout == loaded.ClientReadTimeout)
	check("client_write_timeout", running.ClientWriteTimeout == loaded.ClientWriteTimeout)
	check("client_idle_timeout", running.ClientIdleTimeout == loaded.ClientIdleTimeout)
	// The logger and the access log are built at start, by cmd/server
	// and the gateway, and every request holds them.
	check("log_format", running.LogFormat == loaded.LogFormat)
	check("access_log", running.AccessLog == loaded.AccessLog)
	check("access_log_sample_hits", running.AccessLogSampleHits == loaded.AccessLogSampleHits)
	return fields
}
