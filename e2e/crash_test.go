package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/fs"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/web"
)

// The child process of TestCrashLosesAtMostTheWindow: a cachegate on the
// backend and upstream its environment names, serving until it is killed.
const (
	crashDSNEnv      = "CACHEGATE_CRASH_CHILD_DSN"
	crashUpstreamEnv = "CACHEGATE_CRASH_CHILD_UPSTREAM"
)

func TestCrashChild(t *testing.T) {
	dsn := os.Getenv(crashDSNEnv)
	if dsn == "" {
		t.Skip("the child process of TestCrashLosesAtMostTheWindow")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := web.Open(context.Background(), web.Config{
		Listen:      "127.0.0.1:0",
		Backend:     dsn,
		ExpireAfter: cache.Expiry(time.Hour),
		Upstreams:   []web.UpstreamConfig{upstream("up", os.Getenv(crashUpstreamEnv))},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("listening %s\n", srv.URL())
	t.Fatal(srv.Serve()) // returns only on error: the parent kills the process
}

// crashBody is the body the upstream sends for item name: its size and
// bytes follow from the name, so that any entry can be checked whole.
// Sizes run from 1 KiB to 64 KiB, so some bodies take the hot tier's file
// path (32 KiB and more).
func crashBody(name string) []byte {
	h := fnv.New32a()
	h.Write([]byte(name))
	size := 1024 + int(h.Sum32()%64)*1024
	return bytes.Repeat([]byte(name+"|"), size/(len(name)+1)+1)[:size]
}

func crashUpstream(t testing.TB) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, "/item/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(crashBody(name))
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// crashChild is a running child process.
type crashChild struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
}

func startCrashChild(t testing.TB, dsn, upstreamURL string) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDSNEnv+"="+dsn, crashUpstreamEnv+"="+upstreamURL)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = &lockedWriter{w: c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				lines <- u
			}
		}
		close(lines)
	}()
	select {
	case u, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatalf("the child ended before listening: %s", c.stderr)
		}
		c.url = u
	case <-time.After(30 * time.Second):
		t.Fatalf("the child did not listen within 30s: %s", c.stderr)
	}
	return c
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// answered is a miss the child answered whole, and when the client had
// read it all (later than the child answered it).
type answered struct {
	name string
	at   time.Time
}

// loadUntilKilled sends misses (each request a new item) from several
// clients at once until the child is gone, and returns those answered
// whole. It closes enough once n are.
func loadUntilKilled(baseURL, round string, n int, enough chan<- time.Time) []answered {
	const clients = 8
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var got []answered
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name := fmt.Sprintf("%s-c%d-%d", round, w, i)
				resp, err := client.Get(baseURL + "/fetch/up/item/" + name)
				if err != nil {
					return // killed
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				at := time.Now()
				if err != nil {
					return
				}
				if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Cache") == "MISS" && bytes.Equal(body, crashBody(name)) {
					mu.Lock()
					got = append(got, answered{name, at})
					if len(got) == n {
						enough <- got[0].at
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return got
}

// storedItems opens the backend the child left and returns the items it
// holds; every entry must be whole.
func storedItems(t testing.TB, dsn string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	var b cache.Backend
	var err error
	if path, ok := strings.CutPrefix(dsn, "sqlite://"); ok {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		var check string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
			t.Fatalf("integrity_check after the kill: %q, %v", check, err)
		}
		db.Close()
		b, err = sqlite.Open(dsn)
		if err != nil {
			t.Fatal(err)
		}
	} else {
		dir, _ := fs.ParseDSN(dsn)
		left, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp*"))
		t.Logf("the kill left %d temporary files", len(left))
		if b, err = fs.Open(dsn); err != nil {
			t.Fatal(err)
		}
		// What the killed child was writing is gone, and its lock file:
		// only the one of the backend just opened is left.
		tmp, _ := filepath.Glob(filepath.Join(dir, "*", ".tmp*"))
		owners, _ := filepath.Glob(filepath.Join(dir, ".owner-*"))
		if len(tmp) > 0 || len(owners) != 1 {
			t.Fatalf("after Open: temporary files %q, lock files %q; want none and one", tmp, owners)
		}
	}
	defer b.Close()
	items := map[string]bool{}
	q := cache.Query{Limit: cache.MaxLimit, WithBody: true}
	for {
		page, err := b.List(ctx, q)
		if err != nil {
			t.Fatalf("list after the kill: %v", err)
		}
		for _, e := range page.Entries {
			_, name, ok := strings.Cut(e.URL, "/item/")
			if !ok {
				t.Fatalf("a stranger in the cache: %s", e.URL)
			}
			if e.Size != int64(len(e.Body)) || !bytes.Equal(e.Body, crashBody(name)) {
				t.Fatalf("%s is not whole after the kill: %d bytes (size %d), want %d", name, len(e.Body), e.Size, len(crashBody(name)))
			}
			items[name] = true
		}
		if page.Next == "" {
			return items
		}
		q.Cursor = page.Next
	}
}

// A cachegate killed with SIGKILL under write load leaves a backend that
// opens, is consistent (SQLite's integrity_check), holds only whole
// entries, and holds every miss answered more than the write-behind
// window before the kill. Each backend is killed several times over the
// same files, so each round also starts on what the last kill left.
func TestCrashLosesAtMostTheWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	up := crashUpstream(t)
	const rounds = 5
	window := tiered.DefaultWindow
	for _, c := range []struct{ name, dsn string }{
		{"sqlite", "sqlite://" + filepath.Join(t.TempDir(), "c.db")},
		{"fs", "file://" + t.TempDir()},
	} {
		t.Run(c.name, func(t *testing.T) {
			for round := range rounds {
				child := startCrashChild(t, c.dsn, up)
				// Kill at a different moment of the load each round, once
				// enough misses were answered and the first of them long
				// enough ago for some to be older than the window.
				want := 60 + 30*round
				after := window + time.Duration(round+1)*100*time.Millisecond
				enough := make(chan time.Time, 1)
				var killAt time.Time
				killed := make(chan struct{})
				go func() {
					defer close(killed)
					first := <-enough
					time.Sleep(time.Until(first.Add(after))) // the moment to kill, not a wait for a goroutine
					killAt = time.Now()
					child.cmd.Process.Kill() // SIGKILL
				}()
				start := time.Now()
				got := loadUntilKilled(child.url, fmt.Sprintf("r%d", round), want, enough)
				select {
				case <-killed:
				default:
					t.Fatalf("round %d: the load ended before the kill, with %d misses answered: %s", round, len(got), child.stderr)
				}
				child.cmd.Wait()

				stored := storedItems(t, c.dsn)
				var old, lost, young, youngLost int
				var gone []string
				for _, a := range got {
					if a.at.Before(killAt.Add(-window)) {
						old++
						if !stored[a.name] {
							lost++
							gone = append(gone, fmt.Sprintf("%s (%v before)", a.name, killAt.Sub(a.at).Round(time.Millisecond)))
						}
						continue
					}
					young++
					if !stored[a.name] {
						youngLost++
					}
				}
				t.Logf("round %d: %d misses answered in %v; %d more than %v before the kill, %d of them lost; %d within it, %d of them lost",
					round, len(got), killAt.Sub(start).Round(time.Millisecond), old, window, lost, young, youngLost)
				if lost > 0 {
					t.Errorf("round %d: %d misses answered more than %v before the kill are gone: %s", round, lost, window, strings.Join(gone[:min(5, len(gone))], ", "))
				}
				if old == 0 {
					t.Errorf("round %d: no miss was answered more than the window before the kill: nothing was tested", round)
				}
			}
		})
	}
}
