package main

import (
	"strings"
	"testing"
	"time"
)

func TestHotRounds(t *testing.T) {
	for _, tc := range []struct {
		rounds int
		quick  bool
		want   int
	}{{3, false, 5}, {1, false, 5}, {5, false, 5}, {7, false, 7}, {1, true, 1}, {3, true, 3}} {
		if got := hotRounds(config{Rounds: tc.rounds, Quick: tc.quick}); got != tc.want {
			t.Errorf("hotRounds(rounds %d, quick %v) = %d, want %d", tc.rounds, tc.quick, got, tc.want)
		}
	}
}

// hotRun is one wrk run over the hot URLs with its server CPU time.
func hotRun(rps float64, p99 time.Duration, cpuSec float64) wrkRun {
	return wrkRun{wrkResult: wrkResult{ReqPerSec: rps, P99: p99, Requests: 100_000}, cpu: cpuUse{serverSec: cpuSec}}
}

func TestMillionHitChecks(t *testing.T) {
	m := &millionResult{entries: 1_000_000, hot: hotCount, rounds: 5}
	for i := range 5 {
		// 100k requests per run; 2.5 s and 3.0 s of CPU give
		// 25 and 30 µs per request (the last round an outlier).
		extra := float64(i/4) * 1.0
		m.direct = append(m.direct, hotRun(40000, 2*ms, 1))
		m.small = append(m.small, hotRun(20000, 5*ms, 2.5+extra))
		m.large = append(m.large, hotRun(19000, 5*ms, 3.0+extra))
	}
	out := m.checks(config{Rounds: 3, Duration: 5 * time.Second})
	if len(out) != 2 || !strings.HasPrefix(out[0], "PASS hit at 1000000 entries") {
		t.Fatalf("checks = %q; want the PASS hit line, then the INFO CPU line", out)
	}
	want := "INFO hit at 1000000 entries, server CPU per request (not a target of issue 5; steady when CPU is stolen): 30.0 µs against 25.0 µs at 1000 entries, 1.20× (median of 5 round(s))"
	if out[1] != want {
		t.Fatalf("CPU line:\n%s\nwant\n%s", out[1], want)
	}
	md := m.markdown(config{Rounds: 3, Duration: 5 * time.Second})
	for _, w := range []string{"5 round(s) of 5s (at least 5 here outside `-quick`, against 3 for the throughput table",
		"| cachegate-sqlite, 1000000 entries | 19.0k | 5.00 ms | 0.47 | 30.0 µs | 19.0k 19.0k 19.0k 19.0k 19.0k | 30.0 30.0 30.0 30.0 40.0 |"} {
		if !strings.Contains(md, w) {
			t.Errorf("markdown lacks %q:\n%s", w, md)
		}
	}

	// The verdict's threshold is unchanged: 10% fewer req/s still passes,
	// more fails.
	for i := range m.large {
		m.large[i].ReqPerSec = 17900
	}
	if out := m.checks(config{}); !strings.HasPrefix(out[0], "FAIL") {
		t.Errorf("large at 0.895× the small's req/s: %s", out[0])
	}

	// Without CPU figures the INFO line says so.
	for i := range m.small {
		m.small[i].cpu.serverSec = -1
	}
	if out := m.checks(config{}); !strings.Contains(out[1], "not measured") {
		t.Errorf("no CPU figures: %s", out[1])
	}
}
