package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// tool names the binary the runner needs and the Debian package that has it.
var toolPackages = []struct{ bin, pkg string }{
	{"nginx", "nginx"},
	{"varnishd", "varnish"},
	{"wrk", "wrk"},
}

// lookTool finds bin on PATH or in the sbin directories PATH often lacks.
func lookTool(bin string) (string, bool) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := dir + "/" + bin
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// ensureTools returns the path of each tool, installing the missing ones with
// apt-get (running apt-get update only when the install fails without it).
func ensureTools(ctx context.Context, install bool) (map[string]string, error) {
	var missing []string
	for _, t := range toolPackages {
		if _, ok := lookTool(t.bin); !ok {
			missing = append(missing, t.pkg)
		}
	}
	if len(missing) > 0 {
		if !install {
			return nil, fmt.Errorf("missing %s and -no-install is set", strings.Join(missing, ", "))
		}
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("missing %s: run as root or `apt-get install -y %s`", strings.Join(missing, ", "), strings.Join(missing, " "))
		}
		logf("installing %s", strings.Join(missing, " "))
		args := append([]string{"install", "-y", "--no-install-recommends"}, missing...)
		if out, err := runCmd(ctx, 10*time.Minute, "", "apt-get", args...); err != nil {
			logf("apt-get install failed, running apt-get update: %v\n%s", err, tail(out, 5))
			if out, err := runCmd(ctx, 10*time.Minute, "", "apt-get", "update"); err != nil {
				return nil, fmt.Errorf("apt-get update: %w\n%s", err, tail(out, 10))
			}
			if out, err := runCmd(ctx, 10*time.Minute, "", "apt-get", args...); err != nil {
				return nil, fmt.Errorf("apt-get install: %w\n%s", err, tail(out, 10))
			}
		}
	}
	tools := map[string]string{}
	for _, t := range toolPackages {
		p, ok := lookTool(t.bin)
		if !ok {
			return nil, fmt.Errorf("%s not found after installing %s", t.bin, t.pkg)
		}
		tools[t.bin] = p
	}
	return tools, nil
}

// machineInfo describes the machine and the software measured, for the report.
func machineInfo(ctx context.Context, cfg config, tools map[string]string) []string {
	first := func(s string) string {
		s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
		return strings.TrimSpace(s)
	}
	cmd := func(bin string, args ...string) string {
		out, _ := runCmd(ctx, 10*time.Second, cfg.root, bin, args...)
		return first(out)
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Join(strings.Fields(first(string(b)))[1:], " ")
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return []string{
		"CPUs (nproc): " + cmd("nproc"),
		"Load average at start (1, 5, 15 min): " + load + " — anything else running skews the figures",
		"CPU: " + cpu,
		"Memory: " + mem,
		"Kernel: " + cmd("uname", "-sr"),
		"Go: " + cmd("go", "version") + " (runner built with " + runtime.Version() + ")",
		"nginx: " + cmd(tools["nginx"], "-v"),
		"Varnish: " + cmd(tools["varnishd"], "-V"),
		"wrk: " + cmd(tools["wrk"], "-v"),
		"cachegate commit: " + cmd("git", "rev-parse", "--short", "HEAD"),
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
