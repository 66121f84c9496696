package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrkResult is what the runner keeps from one wrk run.
type wrkResult struct {
	Requests  int
	ReqPerSec float64
	P50, P99  time.Duration
	Non2xx    int
	SockErrs  int // connect + read + write + timeout
}

// runWrk runs wrk against url for cfg.Duration and parses its --latency
// output. extra goes before the URL (a Lua script: "-s", path).
func runWrk(ctx context.Context, cfg config, url string, extra ...string) (wrkResult, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+30*time.Second)
	defer cancel()
	args := []string{
		"-t", strconv.Itoa(cfg.Threads),
		"-c", strconv.Itoa(cfg.Connections),
		"-d", fmt.Sprintf("%ds", int(cfg.Duration.Seconds())), // wrk knows s, m, h only
		"--timeout", "10s",
		"--latency"}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, cfg.wrkBin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads the summary wrk prints with --latency.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: bad Requests/sec %q", f[1])
			}
			r.ReqPerSec, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := time.ParseDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk: bad latency %q", f[1])
			}
			if f[0] == "50%" {
				r.P50 = d
			} else {
				r.P99, haveP99 = d, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			r.Requests, _ = strconv.Atoi(f[0])
		case len(f) == 5 && f[0] == "Non-2xx":
			r.Non2xx, _ = strconv.Atoi(f[4])
		case len(f) > 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.Atoi(strings.TrimSuffix(f[i], ","))
				r.SockErrs += n
			}
		}
	}
	if !haveRPS || !haveP99 {
		return r, fmt.Errorf("wrk: no Requests/sec or 99%% line in output:\n%s", out)
	}
	return r, nil
}
