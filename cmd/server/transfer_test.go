package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/cache/cachetest"
)

// seedSQLite creates a SQLite cache at a new path holding n entries: even
// ones from upstream "a" with 2 KiB bodies, odd ones from "b" with small
// bodies. It returns the path.
func seedSQLite(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "src.db")
	b, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	for i := range n {
		e := cachetest.NewEntry(fmt.Sprintf("k%03d", i))
		e.URL = fmt.Sprintf("https://demo.example/v%d/items/%d", i%3, i)
		e.Upstream = "b"
		if i%2 == 0 {
			e.Upstream = "a"
			cachetest.SetBody(e, bytes.Repeat([]byte{byte(i)}, 2048))
		}
		if err := b.Put(context.Background(), e); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

// countSQLite returns what the SQLite cache at path holds.
func countSQLite(tb testing.TB, path string, f cache.Filter) cache.Totals {
	tb.Helper()
	b, err := sqlite.Open("sqlite://" + path)
	if err != nil {
		tb.Fatal(err)
	}
	defer b.Close()
	n, err := b.Count(context.Background(), f)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// runCmd runs the command line with an environment and returns the exit
// code, stdout and stderr.
func runCmd(tb testing.TB, env map[string]string, args ...string) (int, string, string) {
	tb.Helper()
	var out, errOut bytes.Buffer
	code := run(args, func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExportImportCommands(t *testing.T) {
	src := seedSQLite(t, 40)
	dir := t.TempDir()

	code, stdout, stderr := runCmd(t, nil, "export", "-backend", "sqlite://"+src)
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 41 || !strings.HasPrefix(lines[0], `{"format":"cachegate-export","version":1,`) {
		t.Fatalf("export wrote %d lines starting %.60q", len(lines), stdout)
	}
	if !strings.HasPrefix(stderr, "exported 40 entries (41 kB) in ") {
		t.Fatalf("stderr %q, want the final count line", stderr)
	}

	file := filepath.Join(dir, "a.ndjson")
	code, _, stderr = runCmd(t, map[string]string{"CACHEGATE_BACKEND": "sqlite://" + src},
		"export", "-upstream", "a", "-min-size", "1KiB", "-method", "get", "-status", "200", "-fresh=false", "-out", file)
	if code != 0 || !strings.HasPrefix(stderr, "exported 20 entries") {
		t.Fatalf("filtered export from CACHEGATE_BACKEND: exit %d: %s", code, stderr)
	}

	dst := filepath.Join(dir, "dst.db")
	code, _, stderr = runCmd(t, nil, "import", "-backend", "sqlite://"+dst, "-in", file)
	if code != 0 || !strings.HasPrefix(stderr, "imported 20 entries (41 kB) in ") {
		t.Fatalf("import: exit %d: %s", code, stderr)
	}
	if got := countSQLite(t, dst, cache.Filter{}); got.Entries != 20 || got.Bytes != 20*2048 {
		t.Fatalf("destination holds %+v", got)
	}
	if got := countSQLite(t, dst, cache.Filter{Upstream: "b"}); got.Entries != 0 {
		t.Fatalf("filtered-out entries imported: %+v", got)
	}
}

func TestExportHARCommand(t *testing.T) {
	src := seedSQLite(t, 5)
	file := filepath.Join(t.TempDir(), "out.har")
	code, stdout, stderr := runCmd(t, nil, "export", "-backend", "sqlite://"+src, "-format", "har", "-url", "*/v1/*", "-out", file)
	if code != 0 || stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var har struct {
		Log struct {
			Version string
			Entries []struct{ Request struct{ URL string } }
		}
	}
	if err := json.Unmarshal(data, &har); err != nil {
		t.Fatalf("HAR: %v", err)
	}
	if har.Log.Version != "1.2" || len(har.Log.Entries) != 2 || !strings.Contains(har.Log.Entries[0].Request.URL, "/v1/") {
		t.Fatalf("HAR %+v", har.Log)
	}
}

func TestImportDamagedCommand(t *testing.T) {
	src := seedSQLite(t, 6)
	file := filepath.Join(t.TempDir(), "x.ndjson")
	if code, _, stderr := runCmd(t, nil, "export", "-backend", "sqlite://"+src, "-out", file); code != 0 {
		t.Fatal(stderr)
	}
	data, _ := os.ReadFile(file)
	lines := strings.Split(string(data), "\n")
	lines[3] = `{"key":"k002","oops"` // line 4
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mode   string
		stored int64
		final  string
	}{
		{"skip", 5, "imported 5 entries"},
		{"stop", 2, "imported 2 entries"},
	}
	for _, tc := range cases {
		t.Run(tc.mode, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst.db")
			code, _, stderr := runCmd(t, nil, "import", "-backend", "sqlite://"+dst, "-in", file, "-on-error", tc.mode)
			if code != 1 || !strings.Contains(stderr, "line 4: malformed JSON") || !strings.Contains(stderr, tc.final) || !strings.Contains(stderr, "1 failed") {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr)
			}
			if got := countSQLite(t, dst, cache.Filter{}); got.Entries != tc.stored {
				t.Fatalf("%d entries stored, want %d", got.Entries, tc.stored)
			}
		})
	}
}

func TestCopyCommand(t *testing.T) {
	src := seedSQLite(t, 30)
	dst := filepath.Join(t.TempDir(), "dst.db")
	code, stdout, stderr := runCmd(t, nil, "copy", "-from", "sqlite://"+src, "-to", "sqlite://"+dst, "-url", "/v2/", "-upstream", "b")
	if code != 0 || stdout != "" || !strings.HasPrefix(stderr, "copied 5 entries") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	want := countSQLite(t, src, cache.Filter{URL: "/v2/", Upstream: "b"})
	if got := countSQLite(t, dst, cache.Filter{}); got != want {
		t.Fatalf("destination holds %+v, want %+v", got, want)
	}
}

func TestTransferCommandErrors(t *testing.T) {
	src := seedSQLite(t, 1)
	missing := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help", []string{"export", "-h"}, 0, "usage: cachegate export"},
		{"unknown flag", []string{"export", "-nope"}, 2, "-nope"},
		{"bad format", []string{"export", "-format", "csv"}, 2, "-format"},
		{"bad status", []string{"export", "-status", "ok"}, 2, "-status"},
		{"bad size", []string{"copy", "-from", "memory://", "-to", "sqlite://x.db", "-max-size", "lots"}, 2, "-max-size"},
		{"sizes crossed", []string{"export", "-min-size", "2MB", "-max-size", "1MB"}, 2, "-min-size"},
		{"fresh and expired", []string{"export", "-fresh", "-expired"}, 2, "-fresh and -expired"},
		{"bad on-error", []string{"import", "-on-error", "maybe"}, 2, "-on-error"},
		{"stray argument", []string{"import", "file.ndjson"}, 2, "unexpected argument"},
		{"no -from", []string{"copy", "-to", "memory://"}, 2, "-from"},
		{"no -to", []string{"copy", "-from", "memory://"}, 2, "-to"},
		{"same backend", []string{"copy", "-from", "memory://", "-to", "memory://"}, 2, "same backend"},
		{"not a DSN", []string{"export", "-backend", "cache.db"}, 2, "-backend"},
		{"unknown scheme", []string{"export", "-backend", "redis://x"}, 2, "-backend"},
		{"missing source", []string{"export", "-backend", "sqlite://" + missing}, 1, "missing.db"},
		{"missing input", []string{"import", "-backend", "memory://", "-in", missing}, 1, "-in"},
		{"not an export", []string{"import", "-backend", "memory://", "-in", src}, 1, "not a cachegate export"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
				t.Fatalf("exit %d, want %d; stderr %q, want %q in it", code, tc.code, stderr, tc.inStderr)
			}
		})
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("exporting from a missing SQLite file created it")
	}
}

func TestWithoutHotTier(t *testing.T) {
	cases := []struct{ in, want string }{
		{"sqlite://c.db", "sqlite://c.db?hot_size=0"},
		{"sqlite://c.db?max_size=1GiB", "sqlite://c.db?max_size=1GiB&hot_size=0"},
		{"mongodb://h1:1,h2:2/db?replicaSet=rs", "mongodb://h1:1,h2:2/db?replicaSet=rs&hot_size=0"},
		{"file:///var/cache/cg", "file:///var/cache/cg?hot_size=0"},
		{"sqlite://c.db?hot_size=8MiB", "sqlite://c.db?hot_size=8MiB"},
		{"memory://", "memory://"},
	}
	for _, tc := range cases {
		if got := withoutHotTier(tc.in); got != tc.want {
			t.Errorf("withoutHotTier(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
