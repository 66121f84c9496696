package main

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/cachegate/cachegate/gateway"
)

// The settings of the logs: log_format, access_log, access_log_sample_hits.

const (
	logFormatWant  = "text or json"
	accessLogWant  = "all, errors or off"
	sampleHitsWant = "a whole number, 0 or more: log one in that many cache hits (0 and 1: every one)"
)

// logFormat is how every log line is written: text (slog's key=value) or json.
type logFormat string

func (v *logFormat) Set(s string) error {
	switch s {
	case "text", "json":
		*v = logFormat(s)
		return nil
	}
	return fmt.Errorf("bad log format %q: want %s", s, logFormatWant)
}

func (v *logFormat) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }

// accessLogMode is which /fetch/ requests get an access log line.
type accessLogMode string

func (v *accessLogMode) Set(s string) error {
	switch s {
	case gateway.AccessLogAll, gateway.AccessLogErrors, gateway.AccessLogOff:
		*v = accessLogMode(s)
		return nil
	}
	return fmt.Errorf("bad access log mode %q: want %s", s, accessLogWant)
}

func (v *accessLogMode) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }

// sampleRate is access_log_sample_hits.
type sampleRate int

func (v *sampleRate) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("bad sample rate %q: want %s", s, sampleHitsWant)
	}
	*v = sampleRate(n)
	return nil
}

func (v *sampleRate) UnmarshalYAML(n *yaml.Node) error { return decodeScalar(n, v.Set) }

// newLoggers returns the server's logger, at level, and the access log's,
// at level Info whatever level is: quieting the server's own lines must
// not drop the access log (access_log does that). Both write to w in
// format (loadConfig has checked it; "" is text), one line at a time.
func newLoggers(w io.Writer, format string, level slog.Level) (server, access *slog.Logger) {
	w = &lockedWriter{w: w}
	return slog.New(newLogHandler(w, format, level)), slog.New(newLogHandler(w, format, slog.LevelInfo))
}

func newLogHandler(w io.Writer, format string, level slog.Level) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// lockedWriter serializes the writes of the handlers that share it: the
// server's log and the access log each lock only their own handler, and
// their lines must not interleave on stderr.
type lockedWriter struct {
	mu sync.Mutex // protects w
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
