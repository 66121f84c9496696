// Command soakgw is the gateway the soak step of benchrun runs: web.Server,
// opened and served as cmd/server does, plus net/http/pprof on a second
// listener on loopback, so the soak can count the process's goroutines
// before, during and after its load.
//
// cmd/server has no profiling endpoint on purpose: a profile shows memory
// and the command line, tokens included. This command is for benchmarks
// only and refuses a debug address off loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	runtimedebug "runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soakgw:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:8080", "address of the gateway")
	debug := flag.String("debug-listen", "127.0.0.1:6060", "loopback address of /debug/pprof/")
	backend := flag.String("backend", "memory://", "backend DSN")
	up := flag.String("upstream", "", "the upstream, NAME=URL")
	expire := flag.Duration("expire-after", time.Hour, "default expiry")
	flag.Parse()

	name, rawURL, ok := strings.Cut(*up, "=")
	if !ok {
		return errors.New("-upstream: want NAME=URL")
	}
	if _, err := url.Parse(rawURL); err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	host, _, err := net.SplitHostPort(*debug)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-debug-listen %q: want a loopback address, like 127.0.0.1:6060", *debug)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The soak's misses ask not to be stored (X-Cachegate-Expire-After:
	// do_not_cache), so that the cache does not grow under it: clients
	// may only say so where the upstream lets them.
	policy := cache.DefaultPolicy(cache.Expiry(*expire))
	policy.ClientOverrides = true
	cfg := web.Config{
		Listen:          *listen,
		Backend:         *backend,
		ExpireAfter:     cache.Expiry(*expire),
		ShutdownTimeout: 5 * time.Second,
		Upstreams:       []web.UpstreamConfig{{Name: name, URL: rawURL, Policy: policy}},
	}
	srv, err := web.Open(ctx, cfg, log)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// The soak compares RSS before and after its load; memory the heap
	// freed but the runtime has not yet handed back is not held, so it
	// asks for it to be returned before each reading.
	mux.HandleFunc("/debug/free-os-memory", func(w http.ResponseWriter, r *http.Request) { runtimedebug.FreeOSMemory() })
	dbg := &http.Server{Addr: *debug, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	dln, err := net.Listen("tcp", *debug)
	if err != nil {
		return err
	}
	go dbg.Serve(dln)
	defer dbg.Close()

	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Close(sctx)
	if serr := <-served; err == nil {
		err = serr
	}
	return err
}
