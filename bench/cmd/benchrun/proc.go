package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server the runner started. It runs in its own process group so
// that stop reaches its workers (nginx, the Varnish child) and so that a
// Ctrl-C on the terminal reaches only the runner, which then stops it in order.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	// lifeline is the runner's end of the watchdog's stdin, nil without one.
	lifeline *os.File
	done     chan struct{} // closed when the process has been reaped
	err      error         // set before done is closed
}

// watchdog runs a daemon that forks workers (nginx, varnishd) so that they go
// away even if the runner is killed outright: Pdeathsig reaches only the
// process it is set on, not the workers it forks. The shell holds a pipe from
// the runner on stdin; when the runner exits for any reason, read sees EOF and
// the shell stops the daemon, which stops its workers.
const watchdog = `"$@" </dev/null &
child=$!
read -r _
kill -TERM "$child" 2>/dev/null
wait "$child"`

// startProc starts bin with args, its output going to logPath. With
// supervised, it runs under the watchdog shell instead of relying on Pdeathsig.
// env holds variables ("K=V") set on top of the runner's environment.
func startProc(name, logPath string, supervised bool, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the runner dies without cleaning up (SIGKILL), the child goes too.
		Pdeathsig: syscall.SIGKILL,
	}
	var lifeline *os.File
	if supervised {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		defer r.Close()
		lifeline = w
		cmd = exec.Command("/bin/sh", append([]string{"-c", watchdog, "watchdog", bin}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = r, logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...) // the last value of a key wins
	}
	if err := cmd.Start(); err != nil {
		if lifeline != nil {
			lifeline.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, lifeline: lifeline, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has already ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the process group to end (SIGTERM) and kills what is left of it
// (SIGKILL) after five seconds. It returns within about ten seconds.
func (p *proc) stop() {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	// Wait for the whole group, not only its leader: a daemon's workers, or a
	// daemon whose watchdog shell has already gone, may take a moment longer.
	// The group id cannot be reused while any member is alive.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-pgid, 0) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if syscall.Kill(-pgid, 0) == nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if p.lifeline != nil {
		p.lifeline.Close()
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// logTail returns the last lines of the process's output, for error messages.
func (p *proc) logTail(lines int) string {
	b, _ := os.ReadFile(p.logPath)
	if len(bytes.TrimSpace(b)) == 0 {
		return "(no output)"
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// rssKiB sums the resident memory of every process in p's process group.
func (p *proc) rssKiB() int {
	pgid := p.cmd.Process.Pid
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	total := 0
	for _, d := range dirs {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// Fields after "(comm) ": state ppid pgrp ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				total += n
			}
		}
	}
	return total
}

// waitHTTP polls url until it answers 200, the process exits, or timeout passes.
func waitHTTP(parent context.Context, p *proc, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering %s (%s); its output ends:\n%s", p.name, url, exitText(p.err), p.logTail(15))
		case <-ctx.Done():
			if parent.Err() != nil {
				return fmt.Errorf("waiting for %s: %w", p.name, context.Cause(parent))
			}
			return fmt.Errorf("%s not ready at %s after %s (%v); its log ends:\n%s", p.name, url, timeout, err, p.logTail(15))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runCmd runs a short command with a deadline and returns its combined output.
func runCmd(ctx context.Context, timeout time.Duration, dir, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%s: timed out after %s", bin, timeout)
	}
	return string(out), err
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
