package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigSoak(t *testing.T) {
	env := func(string) string { return "" }
	tests := []struct {
		name     string
		args     []string
		wantSoak time.Duration
		wantOnly string
		wantErr  string
	}{
		{name: "default", wantSoak: time.Minute},
		{name: "quick", args: []string{"-quick"}, wantSoak: 20 * time.Second},
		{name: "quick with soak", args: []string{"-quick", "-soak", "45s"}, wantSoak: 45 * time.Second},
		{name: "off", args: []string{"-soak", "0"}, wantSoak: 0},
		{name: "only soak", args: []string{"-only", "soak"}, wantSoak: time.Minute, wantOnly: "soak"},
		{name: "only soak of nothing", args: []string{"-only", "soak", "-soak", "0"}, wantErr: "-only soak with -soak 0"},
		{name: "only unknown", args: []string{"-only", "herd"}, wantErr: `-only "herd": want soak`},
		{name: "negative", args: []string{"-soak", "-1s"}, wantErr: "soak 0..1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(tt.args, env, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Soak != tt.wantSoak || c.Only != tt.wantOnly {
				t.Fatalf("Soak %v, Only %q; want %v, %q", c.Soak, c.Only, tt.wantSoak, tt.wantOnly)
			}
		})
	}
}

// goroutines reads the count from a real goroutine profile.
func TestGoroutinesFromProfile(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	n, err := goroutines(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The test's own goroutines and the server's are at least 2; the count
	// cannot exceed what the runtime had once the answer was written.
	if n < 2 || n > runtime.NumGoroutine()+10 {
		t.Fatalf("goroutines = %d (runtime says %d now)", n, runtime.NumGoroutine())
	}
	if _, err := goroutines(context.Background(), srv.Client(), srv.URL+"/nothing"); err == nil {
		t.Fatal("a page that is not a goroutine profile was read as one")
	}
}

func TestSoakChecks(t *testing.T) {
	base := func() *soakResult {
		return &soakResult{
			duration: time.Minute, slackG: 5,
			counts: map[string]*soakCount{"hit": {requests: 100}, "slow": {requests: 3}},
			baseG:  20, peakG: 60, endG: 22,
			baseRSS: 40 << 10, peakRSS: 60 << 10, endRSS: 50 << 10, rssLimitKiB: 60 << 10,
		}
	}
	tests := []struct {
		name   string
		change func(*soakResult)
		want   []string // the verdict of each check, in order
	}{
		{name: "clean", change: func(*soakResult) {}, want: []string{"PASS", "PASS", "PASS", "PASS"}},
		{name: "an error", change: func(r *soakResult) { r.counts["slow"].errors = 1 }, want: []string{"FAIL", "PASS", "PASS", "PASS"}},
		{name: "no requests", change: func(r *soakResult) { r.counts = map[string]*soakCount{} }, want: []string{"FAIL", "PASS", "PASS", "PASS"}},
		{name: "goroutines left", change: func(r *soakResult) { r.endG = 26 }, want: []string{"PASS", "FAIL", "PASS", "PASS"}},
		{name: "misses stored", change: func(r *soakResult) { r.endEntries = 3000 }, want: []string{"PASS", "PASS", "FAIL", "PASS"}},
		{name: "memory kept", change: func(r *soakResult) { r.endRSS = 61 << 10 }, want: []string{"PASS", "PASS", "PASS", "FAIL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.change(r)
			got := r.checks()
			if len(got) != len(tt.want) {
				t.Fatalf("%d checks, want %d: %q", len(got), len(tt.want), got)
			}
			for i, c := range got {
				if !strings.HasPrefix(c, tt.want[i]+" soak: ") {
					t.Errorf("check %d = %q, want %s", i, c, tt.want[i])
				}
			}
			if md := r.markdown(); !strings.Contains(md, "| goroutines | 20 |") {
				t.Errorf("markdown lacks the goroutine row:\n%s", md)
			}
		})
	}
}
