package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/cachegate/cachegate/web"
)

// healthcheckFlag makes the command probe the server its configuration
// describes instead of starting one: a container's HEALTHCHECK, where the
// image has no curl or shell.
const healthcheckFlag = "-healthcheck"

// takeHealthcheck removes -healthcheck (or --healthcheck) from args and
// reports whether it was there.
func takeHealthcheck(args []string) ([]string, bool) {
	i := slices.IndexFunc(args, func(a string) bool { return a == healthcheckFlag || a == "-"+healthcheckFlag })
	if i < 0 {
		return args, false
	}
	return slices.Delete(slices.Clone(args), i, i+1), true
}

// healthcheck asks GET /healthz of the server listening on cfg.Listen and
// returns 0 when it answers 200 within two seconds, 1 otherwise.
func healthcheck(cfg web.Config, stderr io.Writer) int {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "cachegate: healthcheck:", err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // listening everywhere: loopback is one of them
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		fmt.Fprintln(stderr, "cachegate: healthcheck:", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "cachegate: healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "cachegate: healthcheck: /healthz answered", resp.Status)
		return 1
	}
	return 0
}
