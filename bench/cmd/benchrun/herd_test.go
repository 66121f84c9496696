package main

import (
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestMedianDur(t *testing.T) {
	odd := []time.Duration{9 * ms, 1 * ms, 5 * ms, 3 * ms, 7 * ms}
	if got := medianDur(odd); got != 5*ms {
		t.Fatalf("medianDur(odd) = %v, want 5ms", got)
	}
	if !slices.Equal(odd, []time.Duration{9 * ms, 1 * ms, 5 * ms, 3 * ms, 7 * ms}) {
		t.Fatalf("medianDur reordered its argument: %v", odd)
	}
	if got := medianDur([]time.Duration{104 * ms, 130 * ms}); got != 117*ms {
		t.Fatalf("medianDur(even) = %v, want the mean of the middle two, 117ms", got)
	}
	if got := medianDur(nil); got != 0 {
		t.Fatalf("medianDur(nil) = %v, want 0", got)
	}
}

// series builds one cache's herds from (calls, max) pairs; p50 is max/2,
// p99 max-1ms.
func series(pairs ...any) herdSeries {
	s := herdSeries{target: "cachegate-sqlite"}
	for i := 0; i < len(pairs); i += 2 {
		calls, mx := pairs[i].(int), pairs[i+1].(time.Duration)
		s.herds = append(s.herds, herdResult{target: s.target, herd: i/2 + 1, calls: calls, p50: mx / 2, p99: mx - ms, max: mx})
	}
	return s
}

func TestHerdStats(t *testing.T) {
	up := 100 * ms
	st := series(1, 104*ms, 1, 150*ms, 1, 102*ms, 1, 109*ms, 1, 101*ms).stats(up)
	if st.n != 5 || !st.callsOK || st.errors != 0 {
		t.Fatalf("stats = %+v; want 5 herds, all 1 call, no errors", st)
	}
	if st.medianMax != 104*ms || st.worstMax != 150*ms || st.p50 != 52*ms || st.p99 != 103*ms {
		t.Fatalf("median max %v, worst %v, p50 %v, p99 %v; want 104ms, 150ms, 52ms, 103ms", st.medianMax, st.worstMax, st.p50, st.p99)
	}
	if !st.ratioOK || math.Abs(st.medianRat-1.04) > 1e-9 || math.Abs(st.worstRat-1.5) > 1e-9 {
		t.Fatalf("ratios %v, %v (ok %v); want 1.04, 1.50", st.medianRat, st.worstRat, st.ratioOK)
	}
	if !st.pass() {
		t.Fatal("median herd within 10%, one call each: want PASS despite the worst herd")
	}
	if got := st.tableRow("cachegate-sqlite"); got != "| cachegate-sqlite | 5 | 1 1 1 1 1 | 52.0 ms | 103.0 ms | 104.0 ms | 150.0 ms | 1.04 | 1.50 | 104.0 150.0 102.0 109.0 101.0 | 0 |" {
		t.Fatalf("tableRow = %s", got)
	}

	// A herd whose every request failed has no figure: left out of the
	// medians, and the errors fail the check.
	s := series(1, 104*ms, 1, 0*ms, 1, 106*ms)
	s.herds[1].errors, s.herds[1].firstErr = 200, "warm-up: connection refused"
	st = s.stats(up)
	if st.medianMax != 105*ms || st.errors != 200 || st.pass() {
		t.Fatalf("stats with a failed herd = %+v; want median 105ms, 200 errors, no PASS", st)
	}
}

func TestHerdCheckLine(t *testing.T) {
	up := 100 * ms
	for _, tc := range []struct {
		name  string
		s     herdSeries
		pass  bool
		wants []string
	}{
		{"pass despite a slow herd", series(1, 104*ms, 1, 150*ms, 1, 102*ms, 1, 109*ms, 1, 101*ms), true,
			[]string{"PASS herd (median of 5 herds): 1 upstream call in every herd", "slowest client 104.0 ms in the median herd against 100.0 ms upstream latency (1.04×)", "worst herd 150.0 ms (1.50×)"}},
		{"two calls in one herd", series(1, 101*ms, 2, 102*ms, 1, 103*ms), false,
			[]string{"FAIL herd (median of 3 herds): upstream calls per herd 1 2 1", "(1.02×)"}},
		{"median too slow", series(1, 104*ms, 1, 111*ms, 1, 120*ms), false,
			[]string{"FAIL herd (median of 3 herds)", "slowest client 111.0 ms in the median herd", "(1.11×)", "worst herd 120.0 ms (1.20×)"}},
		{"even count", series(1, 100*ms, 1, 120*ms), true,
			[]string{"PASS herd (median of 2 herds)", "slowest client 110.0 ms in the median herd", "(1.10×)"}},
	} {
		st := tc.s.stats(up)
		line := st.checkLine()
		if st.pass() != tc.pass || strings.HasPrefix(line, "PASS") != tc.pass {
			t.Errorf("%s: pass %v, line %q; want pass %v", tc.name, st.pass(), line, tc.pass)
		}
		for _, w := range tc.wants {
			if !strings.Contains(line, w) {
				t.Errorf("%s: line lacks %q:\n%s", tc.name, w, line)
			}
		}
	}

	s := series(1, 101*ms)
	s.herds[0].errors, s.herds[0].firstErr = 3, "status 502"
	if line := s.stats(up).checkLine(); !strings.HasPrefix(line, "FAIL") || !strings.Contains(line, "3 failed requests (status 502)") {
		t.Errorf("failed requests: %s", line)
	}
	if line := series(1, 101*ms).stats(0).checkLine(); !strings.HasPrefix(line, "FAIL") || !strings.Contains(line, "not measured") {
		t.Errorf("unknown upstream latency: %s", line)
	}
}

// The report's check list has the herd line of cachegate-sqlite only; the
// peers are in the table.
func TestChecksHerdLine(t *testing.T) {
	r := &report{throughput: map[string]map[string][]wrkRun{"cachegate-sqlite": {}}}
	for _, body := range bodies {
		r.throughput["cachegate-sqlite"][body.name] = runs(30000, 3*ms)
	}
	peer := series(1, 600*ms, 1, 550*ms)
	peer.target = "nginx"
	r.herd = herdReport{upstreamLatency: 100 * ms, herds: 2, results: []herdSeries{peer, series(1, 103*ms, 1, 107*ms)}}
	var herd []string
	for _, line := range r.checks(nil, 0) {
		if strings.Contains(line, "herd") {
			herd = append(herd, line)
		}
	}
	if len(herd) != 1 || !strings.HasPrefix(herd[0], "PASS herd (median of 2 herds)") || !strings.Contains(herd[0], "(1.05×); worst herd 107.0 ms (1.07×)") {
		t.Fatalf("herd check lines = %q", herd)
	}
	md := r.markdown()
	for _, want := range []string{"2 herds per cache", "| nginx | 2 | 1 1 | ", "| 5.75 | 6.00 | 600.0 550.0 |", "| cachegate-sqlite | 2 | 1 1 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestLoadConfigHerds(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		args []string
		env  string
		want int
	}{
		{nil, "", 5},
		{[]string{"-quick"}, "", 2},
		{[]string{"-quick", "-herds", "4"}, "", 4},
		{[]string{"-quick"}, "3", 3},
		{nil, "7", 7},
		{[]string{"-herds", "1"}, "7", 1},
	} {
		env["BENCH_HERDS"] = tc.env
		c, err := loadConfig(tc.args, getenv, io.Discard)
		if err != nil {
			t.Fatalf("%v BENCH_HERDS=%q: %v", tc.args, tc.env, err)
		}
		if c.Herds != tc.want {
			t.Errorf("%v BENCH_HERDS=%q: herds %d, want %d", tc.args, tc.env, c.Herds, tc.want)
		}
	}
	env["BENCH_HERDS"] = ""
	if _, err := loadConfig([]string{"-herds", "0"}, getenv, io.Discard); err == nil {
		t.Error("-herds 0: want an error")
	}
}
