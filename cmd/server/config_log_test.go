package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The log settings from each source, later ones winning, and their errors.
func TestLoadConfigLogSettings(t *testing.T) {
	const file = "log_format: json\naccess_log: errors\naccess_log_sample_hits: 10\n"
	tests := []struct {
		name       string
		file       string
		env        map[string]string
		args       []string
		format     string
		mode       string
		sampleHits int
	}{
		{name: "defaults"},
		{name: "file", file: file, format: "json", mode: "errors", sampleHits: 10},
		{
			name: "env over file", file: file,
			env:    map[string]string{"CACHEGATE_LOG_FORMAT": "text", "CACHEGATE_ACCESS_LOG": "all", "CACHEGATE_ACCESS_LOG_SAMPLE_HITS": "100"},
			format: "text", mode: "all", sampleHits: 100,
		},
		{
			name: "flags over env", file: file,
			env:    map[string]string{"CACHEGATE_LOG_FORMAT": "text", "CACHEGATE_ACCESS_LOG": "all"},
			args:   []string{"-log-format", "json", "-access-log", "off", "-access-log-sample-hits", "0"},
			format: "json", mode: "off", sampleHits: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, tt.file, tt.env, tt.args...)
			if c.LogFormat != tt.format || c.AccessLog != tt.mode || c.AccessLogSampleHits != tt.sampleHits {
				t.Fatalf("LogFormat %q, AccessLog %q, AccessLogSampleHits %d; want %q, %q, %d",
					c.LogFormat, c.AccessLog, c.AccessLogSampleHits, tt.format, tt.mode, tt.sampleHits)
			}
		})
	}
}

func TestLoadConfigLogErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "flag log-format", args: []string{"-log-format", "logfmt"}, want: `flag -log-format: bad log format "logfmt": want text or json`},
		{name: "env log format", env: map[string]string{"CACHEGATE_LOG_FORMAT": "JSON"}, want: `env CACHEGATE_LOG_FORMAT: bad log format "JSON": want text or json`},
		{name: "file log_format", file: "log_format: yaml\n", want: `cachegate.yaml:1: log_format: bad log format "yaml": want text or json`},
		{name: "file log_format empty", file: "log_format:\n", want: `cachegate.yaml:1: log_format: no value: want text or json`},
		{name: "flag access-log", args: []string{"-access-log", "some"}, want: `flag -access-log: bad access log mode "some": want all, errors or off`},
		{name: "file access_log", file: "access_log: false\n", want: `cachegate.yaml:1: access_log: bad access log mode "false": want all, errors or off`},
		{name: "flag sample hits", args: []string{"-access-log-sample-hits", "-1"}, want: `flag -access-log-sample-hits: bad sample rate "-1": want a whole number`},
		{name: "file sample hits", file: "access_log_sample_hits: 1%\n", want: `cachegate.yaml:1: access_log_sample_hits: bad sample rate "1%"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.file, tt.env, tt.args...)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("loadConfig: %T %v, want a *configError", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %v\nwant it to contain\n  %v", err, tt.want)
			}
		})
	}
}

// A bad -log-format stops cachegate with exit code 2, naming the flag.
func TestRunBadLogFormat(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-log-format", "xml"}, func(string) string { return "" }, &out, &errOut); code != 2 {
		t.Fatalf("exit code %d, want 2 (stderr %q)", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "flag -log-format") {
		t.Fatalf("stderr %q does not name -log-format", errOut.String())
	}
}

// With json, every line is one JSON object, whichever of the two loggers
// wrote it, and the access log stays on when the server's level is warn.
func TestLogHandlerJSON(t *testing.T) {
	var buf bytes.Buffer
	server, access := newLoggers(&buf, "json", logLevel("warn"))
	server.Warn("cache lookup failed", "upstream", "up")
	server.Info("not shown at warn")
	access.Info("request", "upstream", "up", "status", 200)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if m["upstream"] != "up" {
			t.Fatalf("line %q: upstream %v", line, m["upstream"])
		}
	}
}
