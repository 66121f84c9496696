// Command cachegate runs the caching gateway and its admin side, and moves
// cached entries between backends.
//
//	cachegate [flags]                      serve (see -h)
//	cachegate -healthcheck [flags]         probe /healthz of the server these flags describe
//	cachegate export|import|copy [flags]   see cachegate export -h
//
// main only reads the configuration and starts the server that package web
// assembles.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/cachegate/cachegate/web"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run returns the process exit code: 0 on a clean stop, 1 on a runtime
// failure, 2 on bad configuration.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			return cmd(args[1:], getenv, os.Stdin, stdout, stderr)
		}
	}
	args, probe := takeHealthcheck(args)
	cfg, err := loadConfig(args, os.ReadFile)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, err)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "cachegate:", err)
		return 2
	}
	if probe {
		return healthcheck(cfg, stderr)
	}
	log, accessLog := newLoggers(stderr, cfg.LogFormat, logLevel(getenv("CACHEGATE_LOG_LEVEL")))
	cfg.AccessLogger = accessLog
	// SIGHUP and POST /api/reload read the same flags, environment and
	// file again.
	cfg.Load = func() (web.Config, error) { return loadConfig(args, os.ReadFile) }
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := web.Open(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "cachegate:", err)
		return 1
	}
	if getenv("GOMEMLIMIT") == "" {
		// Without a limit the runtime lets garbage grow as large as the
		// live heap before collecting, doubling the peak; with one it
		// collects as the process nears what it holds by design.
		limit := srv.MemoryByDesign() + memoryBase
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit set", "bytes", limit)
	}
	log.Info("cachegate listening", "url", srv.URL(), "backend", web.RedactDSN(cfg.Backend), "upstreams", len(cfg.Upstreams)+boolInt(cfg.Demo))
	if cfg.Demo {
		log.Info("demo upstream mounted", "try", "curl -i "+srv.URL()+"/fetch/demo/get")
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	go reloads(ctx, hup, srv)
	select {
	case err = <-served:
	case <-ctx.Done():
		log.Info("shutting down", "grace", cfg.ShutdownTimeout)
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err = srv.Close(sctx)
		if serr := <-served; err == nil {
			err = serr
		}
		if err == nil {
			log.Info("stopped cleanly")
			return 0
		}
	}
	if err != nil {
		log.Error("server failed", "err", err)
		return 1
	}
	return 0
}

// reloads reloads srv on every signal from hup until ctx is done.
// Reload logs what it did. A SIGHUP that comes before the server is open
// waits in hup and is served once it is.
func reloads(ctx context.Context, hup <-chan os.Signal, srv *web.Server) {
	for {
		select {
		case <-hup:
			_ = srv.Reload()
		case <-ctx.Done():
			return
		}
	}
}

// memoryBase is the soft memory limit's allowance beyond what the server
// holds by design: the runtime, connection buffers, SQLite's caches.
const memoryBase = 128 << 20

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// subcommands are the commands besides serving, by name. Each returns the
// exit code: 2 for bad flags, 1 for a failure.
var subcommands = map[string]func(args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int{}
