package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
)

// serveChildEnv carries the arguments of TestServeChild, JSON-encoded.
const serveChildEnv = "CACHEGATE_TEST_SERVE_CHILD_ARGS"

// TestServeChild is the child process of the signal tests: the server
// main runs, with its own signal handling, until a signal stops it.
func TestServeChild(t *testing.T) {
	raw := os.Getenv(serveChildEnv)
	if raw == "" {
		t.Skip("the child process of the signal tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	os.Exit(run(args, os.Getenv, os.Stdout, os.Stderr))
}

// serveChild is a running cachegate process.
type serveChild struct {
	t     *testing.T
	cmd   *exec.Cmd
	url   string
	lines chan string // its log, line by line
	done  chan error  // cmd.Wait's result
}

// waitTime bounds every wait for the child, so that a broken child fails
// the test instead of hanging it; nothing waits for it to pass.
const waitTime = 30 * time.Second

func startServeChild(t *testing.T, args ...string) *serveChild {
	t.Helper()
	enc, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix+"_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, serveChildEnv+"="+string(enc))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &serveChild{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range c.lines {
		}
	})
	line := c.waitLine("cachegate listening")
	m := regexp.MustCompile(`url=(\S+)`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("no url in %q", line)
	}
	c.url = m[1]
	return c
}

// waitLine reads the child's log up to the first line holding want and
// returns it.
func (c *serveChild) waitLine(want string) string {
	c.t.Helper()
	deadline := time.After(waitTime)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("the child ended before logging %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-deadline:
			c.t.Fatalf("the child did not log %q within %v", want, waitTime)
		}
	}
}

func (c *serveChild) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// wait waits for the child to exit and returns its exit code.
func (c *serveChild) wait() int {
	c.t.Helper()
	for range c.lines {
	}
	select {
	case <-c.done:
	case <-time.After(waitTime):
		c.t.Fatalf("the child did not exit within %v", waitTime)
	}
	return c.cmd.ProcessState.ExitCode()
}

type fetched struct {
	status int
	header http.Header
	body   string
}

func fetch(t *testing.T, method, url string) fetched {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return fetched{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fetched{resp.StatusCode, resp.Header, string(b)}
}

// ttl is the ttl= of a stored answer's Cache-Status.
func (f fetched) ttl(t *testing.T) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`ttl=(\d+)`).FindStringSubmatch(f.header.Get("Cache-Status"))
	if m == nil {
		t.Fatalf("no ttl in Cache-Status %q", f.header.Get("Cache-Status"))
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Second
}

// slowUpstream answers /slow once release is closed, telling entered when
// it has the request, and /item/* at once.
type slowUpstream struct {
	entered, release chan struct{}
	once             sync.Once
}

func newSlowUpstream(t *testing.T) (*slowUpstream, string) {
	u := &slowUpstream{entered: make(chan struct{}), release: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			u.once.Do(func() { close(u.entered) })
			<-u.release
		}
		w.Write([]byte("body of " + r.URL.Path))
	}))
	t.Cleanup(s.Close)
	t.Cleanup(u.free)
	return u, s.URL
}

// free lets /slow answer (again: it is safe to call twice).
func (u *slowUpstream) free() {
	select {
	case <-u.release:
	default:
		close(u.release)
	}
}

// upstreamsState is what the tests read of GET /api/upstreams.
type upstreamsState struct {
	Upstreams []struct {
		Name        string `json:"name"`
		ExpireAfter string `json:"expire_after"`
	} `json:"upstreams"`
	Config struct {
		LoadedAt     time.Time `json:"loaded_at"`
		Reloads      int64     `json:"reloads"`
		ReloadErrors int64     `json:"reload_errors"`
		LastError    string    `json:"last_error"`
	} `json:"config"`
}

func (c *serveChild) upstreams() upstreamsState {
	c.t.Helper()
	f := fetch(c.t, http.MethodGet, c.url+"/api/upstreams")
	var st upstreamsState
	if err := json.Unmarshal([]byte(f.body), &st); err != nil || f.status != http.StatusOK {
		c.t.Fatalf("GET /api/upstreams: %d %s", f.status, f.body)
	}
	return st
}

func (st upstreamsState) expireAfter(name string) string {
	for _, u := range st.Upstreams {
		if u.Name == name {
			return u.ExpireAfter
		}
	}
	return "(no upstream " + name + ")"
}

func writeConfig(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestSIGHUPReloadsUpstreamRules(t *testing.T) {
	up, upURL := newSlowUpstream(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "cachegate.yaml")
	rules := func(expire, extra string) string {
		return fmt.Sprintf("upstreams:\n  bin:\n    url: %s\n    expire_after: %s\n%s", upURL, expire, extra)
	}
	writeConfig(t, conf, rules("1h", ""))
	c := startServeChild(t, "-config", conf, "-listen", "127.0.0.1:0", "-backend", "sqlite://"+filepath.Join(dir, "cache.db"))

	if got := fetch(t, http.MethodGet, c.url+"/fetch/bin/item/a").ttl(t); got < 59*time.Minute {
		t.Fatalf("before the reload: ttl %v, want 1h", got)
	}
	before := c.upstreams()
	if got := before.expireAfter("bin"); got != cache.Expiry(time.Hour).String() {
		t.Fatalf("expire_after before the reload: %s", got)
	}

	// A request in flight across the reload.
	slow := make(chan fetched, 1)
	go func() { slow <- fetch(t, http.MethodGet, c.url+"/fetch/bin/slow") }()
	<-up.entered

	writeConfig(t, conf, rules("10m", "  two:\n    url: "+upURL+"\n"))
	c.signal(syscall.SIGHUP)
	c.waitLine("config reloaded")
	up.free()
	if a := <-slow; a.status != http.StatusOK || a.body != "body of /slow" {
		t.Fatalf("the request in flight across the reload: %d %q", a.status, a.body)
	}

	after := c.upstreams()
	if got := after.expireAfter("bin"); got != cache.Expiry(10*time.Minute).String() {
		t.Fatalf("expire_after after the reload: %s, want 10m", got)
	}
	if after.expireAfter("two") != cache.Expiry(time.Hour).String() {
		t.Fatalf("the added upstream is not listed: %+v", after.Upstreams)
	}
	if after.Config.Reloads != 1 || !after.Config.LoadedAt.After(before.Config.LoadedAt) {
		t.Fatalf("config after the reload = %+v, before %+v", after.Config, before.Config)
	}
	if got := fetch(t, http.MethodGet, c.url+"/fetch/bin/item/b").ttl(t); got > 10*time.Minute || got < 9*time.Minute {
		t.Fatalf("a new entry after the reload: ttl %v, want 10m", got)
	}
	if a := fetch(t, http.MethodGet, c.url+"/fetch/two/item/c"); a.status != http.StatusOK {
		t.Fatalf("the added upstream answered %d", a.status)
	}

	// A file that does not load keeps the rules in force.
	writeConfig(t, conf, rules("soon", ""))
	c.signal(syscall.SIGHUP)
	if line := c.waitLine("config reload failed"); !strings.Contains(line, "upstreams.bin.expire_after") {
		t.Fatalf("the log line does not name the field: %s", line)
	}
	st := c.upstreams()
	if st.expireAfter("bin") != cache.Expiry(10*time.Minute).String() || st.Config.ReloadErrors != 1 ||
		!strings.Contains(st.Config.LastError, "upstreams.bin.expire_after") {
		t.Fatalf("after a bad file: %+v", st)
	}

	// A setting that takes a restart refuses the whole reload.
	writeConfig(t, conf, "admin_hosts: [cache.example.com]\n"+rules("5m", ""))
	c.signal(syscall.SIGHUP)
	if line := c.waitLine("config reload failed"); !strings.Contains(line, "admin_hosts") {
		t.Fatalf("the log line does not name the field: %s", line)
	}
	if st := c.upstreams(); st.expireAfter("bin") != cache.Expiry(10*time.Minute).String() || st.Config.ReloadErrors != 2 {
		t.Fatalf("after a restart-only change: %+v", st)
	}

	// POST /api/reload does what SIGHUP does.
	writeConfig(t, conf, rules("2m", ""))
	if a := fetch(t, http.MethodPost, c.url+"/api/reload"); a.status != http.StatusOK || !strings.Contains(a.body, `"expire_after":"2m0s"`) {
		t.Fatalf("POST /api/reload: %d %s", a.status, a.body)
	}

	c.signal(syscall.SIGTERM)
	if code := c.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}

// SIGTERM lets a request in flight finish, then flushes the write-behind
// queue: with a window of an hour nothing reaches SQLite before it.
func TestSIGTERMDrainsAndFlushesWriteBehind(t *testing.T) {
	up, upURL := newSlowUpstream(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "cache.db")
	c := startServeChild(t, "-listen", "127.0.0.1:0", "-upstream", "bin="+upURL,
		"-backend", "sqlite://"+db+"?write_behind_window=1h")
	const quick = 20
	for i := range quick {
		if a := fetch(t, http.MethodGet, fmt.Sprintf("%s/fetch/bin/item/%d", c.url, i)); a.status != http.StatusOK {
			t.Fatalf("item %d: %d", i, a.status)
		}
	}
	slow := make(chan fetched, 1)
	go func() { slow <- fetch(t, http.MethodGet, c.url+"/fetch/bin/slow") }()
	<-up.entered
	c.signal(syscall.SIGTERM)
	c.waitLine("shutting down")
	up.free()
	if a := <-slow; a.status != http.StatusOK || a.body != "body of /slow" {
		t.Fatalf("the request in flight at SIGTERM: %d %q", a.status, a.body)
	}
	if code := c.wait(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}

	b, err := sqlite.Open("sqlite://" + db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	page, err := b.List(context.Background(), cache.Query{Limit: cache.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]bool{}
	for _, e := range page.Entries {
		stored[e.URL[strings.LastIndex(e.URL, "/"):]] = true
	}
	if len(page.Entries) != quick+1 || !stored["/slow"] {
		t.Fatalf("SQLite holds %d entries (%v), want %d with /slow", len(page.Entries), stored, quick+1)
	}
}
