package main

import (
	"strings"
	"testing"
	"time"
)

func runs(rps float64, p99 time.Duration) []wrkRun {
	return []wrkRun{{wrkResult: wrkResult{ReqPerSec: rps, P99: p99, Requests: int(rps)}}}
}

// figure is one target's req/s and p99, the same for every body it is given.
type figure struct {
	rps float64
	p99 time.Duration
}

// reportOf is a report with one throughput run per target and body.
func reportOf(figures map[string]figure, bodyNames ...string) *report {
	r := &report{throughput: map[string]map[string][]wrkRun{}}
	for name, f := range figures {
		r.throughput[name] = map[string][]wrkRun{}
		for _, body := range bodyNames {
			r.throughput[name][body] = runs(f.rps, f.p99)
		}
	}
	return r
}

// onlyInfoFor checks that no line of checks passes, cachegate-sqlite's p99
// being above the best peer's in every test here, and returns the one INFO
// line about target.
func onlyInfoFor(t *testing.T, checks []string, target string) string {
	t.Helper()
	var info []string
	for _, line := range checks {
		if strings.HasPrefix(line, "PASS") {
			t.Errorf("passed with cachegate-sqlite's p99 above the best peer's: %s", line)
		}
		if strings.HasPrefix(line, "INFO "+target) {
			info = append(info, line)
		}
	}
	if len(info) != 1 {
		t.Fatalf("want one INFO line for %s, got %d in:\n%s", target, len(info), strings.Join(checks, "\n"))
	}
	return info[0]
}

// The GOMAXPROCS=1 variant gets an INFO line; the verdicts stay on
// cachegate-sqlite even when the variant alone would pass.
func TestChecksOneCPUInformational(t *testing.T) {
	r := reportOf(map[string]figure{
		"nginx":            {30000, 4 * time.Millisecond},
		"varnish":          {28000, 3 * time.Millisecond},
		"cachegate-sqlite": {29000, 8 * time.Millisecond},
		gw1CPU:             {31000, 2 * time.Millisecond},
	}, "1 KiB", "100 KiB")
	info := onlyInfoFor(t, r.checks(nil, 0), gw1CPU)
	for _, want := range []string{"informational", "1 KiB: 31.0k req/s, p99 2.00 ms against cachegate-sqlite's 29.0k req/s, p99 8.00 ms (req/s 1.07×, p99 0.25×)",
		"better peer's 30.0k req/s, best peer p99 3.00 ms (req/s 1.03×, p99 0.67×)", "100 KiB: "} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO line lacks %q:\n%s", want, info)
		}
	}

	delete(r.throughput, gw1CPU)
	for _, line := range r.checks(nil, 0) {
		if strings.Contains(line, gw1CPU) {
			t.Errorf("%s not measured, yet: %s", gw1CPU, line)
		}
	}
}

// go-floor gets an INFO line with its p99 against the best peer's and
// cachegate-sqlite's against it; it is no peer, so even a floor faster than
// every peer neither lowers the bar nor turns a verdict.
func TestChecksFloorInformational(t *testing.T) {
	r := reportOf(map[string]figure{
		"nginx":            {30000, 4 * time.Millisecond},
		"varnish":          {28000, 3 * time.Millisecond},
		"cachegate-sqlite": {40000, 6 * time.Millisecond},
		goFloor:            {50000, 5 * time.Millisecond},
	}, "1 KiB")
	info := onlyInfoFor(t, r.checks(nil, 0), goFloor)
	want := "1 KiB: p99 5.00 ms at 50.0k req/s, 1.67× the best peer's p99 3.00 ms; cachegate-sqlite's p99 6.00 ms is 1.20× the floor's"
	if !strings.Contains(info, want) || strings.Contains(info, "100 KiB") {
		t.Errorf("INFO line is not\n%s\n(and nothing for 100 KiB, not measured), got:\n%s", want, info)
	}
	if rps, p99 := r.bestPeer("1 KiB"); rps != 30000 || p99 != 3*time.Millisecond {
		t.Errorf("best peer = %v req/s, p99 %v; the floor must not count as a peer", rps, p99)
	}

	delete(r.throughput, goFloor)
	if _, ok := r.floorLine(); ok {
		t.Error("floor not measured, yet it has a line")
	}
}
