// Command ferretdb runs FerretDB v1.24 with its SQLite handler (or, with
// -postgres, its PostgreSQL handler), for tests
// built with -race: FerretDB compiled with the race detector turns on its
// debug build (a stack trace per iterator) and runs too slowly to test
// against, so mongotest builds this command without -race and runs it as
// a child process. It stops on SIGINT/SIGTERM or when its standard input
// closes, so it never outlives the test binary that started it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "directory of the SQLite databases")
	postgres := flag.String("postgres", "", "PostgreSQL URL: store there instead of in -dir")
	flag.Parse()
	if err := run(*listen, *dir, *postgres); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run(listen, dir, postgres string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin) // returns when the parent goes away
		cancel()
	}()
	cfg := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: listen},
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	}
	if postgres != "" {
		cfg.Handler, cfg.SQLiteURL, cfg.PostgreSQLURL = "postgresql", "", postgres
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		return err
	}
	return f.Run(ctx)
}
