package web

import (
	"slices"
	"testing"
)

// A reload that changes the log settings is refused naming them: the
// logger and the access log are built at start, and a reload that said
// "reloaded" and went on logging as before would mislead.
func TestReloadRefusesLogSettings(t *testing.T) {
	running := Config{LogFormat: "text", AccessLog: "all"}
	loaded := Config{LogFormat: "json", AccessLog: "off", AccessLogSampleHits: 100}
	got := restartOnly(running, loaded)
	if want := []string{"log_format", "access_log", "access_log_sample_hits"}; !slices.Equal(got, want) {
		t.Fatalf("restartOnly = %v, want %v", got, want)
	}
	if got := restartOnly(running, running); len(got) != 0 {
		t.Fatalf("restartOnly of the same settings = %v", got)
	}
}
