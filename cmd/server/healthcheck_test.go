package main

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/cachegate/cachegate/web"
)

// -healthcheck exits 0 while the server its flags describe answers
// /healthz, and 1 once it is gone; it starts nothing itself.
func TestHealthcheckProbesTheServer(t *testing.T) {
	srv, err := web.Open(context.Background(), web.Config{Listen: "127.0.0.1:0", Backend: "memory://"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	addr := srv.URL()[len("http://"):]
	var stderr bytes.Buffer
	if code := run([]string{"-healthcheck", "-listen", addr, "-backend", "memory://"}, func(string) string { return "" }, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("healthcheck of a running server: exit %d (%s)", code, stderr.String())
	}
	// Listening on every interface: the probe asks loopback.
	_, port, _ := net.SplitHostPort(addr)
	if code := run([]string{"--healthcheck", "-listen", "0.0.0.0:" + port}, func(string) string { return "" }, &bytes.Buffer{}, &stderr); code != 0 {
		t.Fatalf("healthcheck of 0.0.0.0:%s: exit %d (%s)", port, code, stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-served
	stderr.Reset()
	if code := run([]string{"-healthcheck", "-listen", addr}, func(string) string { return "" }, &bytes.Buffer{}, &stderr); code != 1 || stderr.Len() == 0 {
		t.Fatalf("healthcheck of a stopped server: exit %d (%q), want 1 with the reason", code, stderr.String())
	}
	if code := run([]string{"-healthcheck", "-listen", "nope"}, func(string) string { return "" }, &bytes.Buffer{}, &stderr); code != 2 {
		t.Fatalf("healthcheck with a bad -listen: exit %d, want 2", code)
	}
}
