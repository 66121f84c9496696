package main

import (
	"strings"
	"testing"
	"time"
)

func runs(rps float64, p99 time.Duration) []wrkRun {
	return []wrkRun{{wrkResult: wrkResult{ReqPerSec: rps, P99: p99, Requests: int(rps)}}}
}

// The GOMAXPROCS=1 variant gets an INFO line; the verdicts stay on
// cachegate-sqlite even when the variant alone would pass.
func TestChecksOneCPUInformational(t *testing.T) {
	r := &report{throughput: map[string]map[string][]wrkRun{}}
	for _, body := range bodies {
		for name, v := range map[string]struct {
			rps float64
			p99 time.Duration
		}{
			"nginx":            {30000, 4 * time.Millisecond},
			"varnish":          {28000, 3 * time.Millisecond},
			"cachegate-sqlite": {29000, 8 * time.Millisecond},
			gw1CPU:             {31000, 2 * time.Millisecond},
		} {
			if r.throughput[name] == nil {
				r.throughput[name] = map[string][]wrkRun{}
			}
			r.throughput[name][body.name] = runs(v.rps, v.p99)
		}
	}
	out := r.checks(nil, 0)
	var info []string
	for _, line := range out {
		if strings.HasPrefix(line, "PASS") {
			t.Errorf("verdict not on cachegate-sqlite: %s", line)
		}
		if strings.HasPrefix(line, "INFO "+gw1CPU) {
			info = append(info, line)
		}
	}
	if len(info) != 1 {
		t.Fatalf("want one INFO line for %s, got %d in:\n%s", gw1CPU, len(info), strings.Join(out, "\n"))
	}
	for _, want := range []string{"informational", "1 KiB: 31.0k req/s, p99 2.00 ms against cachegate-sqlite's 29.0k req/s, p99 8.00 ms (req/s 1.07×, p99 0.25×)",
		"better peer's 30.0k req/s, best peer p99 3.00 ms (req/s 1.03×, p99 0.67×)", "100 KiB: "} {
		if !strings.Contains(info[0], want) {
			t.Errorf("INFO line lacks %q:\n%s", want, info[0])
		}
	}

	delete(r.throughput, gw1CPU)
	for _, line := range r.checks(nil, 0) {
		if strings.Contains(line, gw1CPU) {
			t.Errorf("%s not measured, yet: %s", gw1CPU, line)
		}
	}
}
