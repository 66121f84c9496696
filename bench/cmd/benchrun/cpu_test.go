package main

import (
	"encoding/binary"
	"math"
	"os"
	"strconv"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	// The command name holds spaces and parentheses, a ") " among them; the
	// fields count from the last ')'. utime 1500, stime 300, cutime 20, cstime 7.
	const line = "4242 (cache (worker) x) 1) S 4200 4100 4100 0 -1 4194624 12 0 0 0 1500 300 20 7 20 0 201 0 1718514 3133440 394 18446744073709551615\n"
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, ppid: 4200, pgrp: 4100, ticks: 1500 + 300 + 20 + 7}
	if got != want {
		t.Fatalf("parseProcStat = %+v, want %+v", got, want)
	}

	for _, bad := range []string{
		"",
		"4242 cache S 4200 4100", // no (comm)
		"x (nginx) S 1 1 1 0 -1 0 0 0 0 0 1 1 0 0",             // bad pid
		"4242 (nginx) S 4200 4100 4100",                        // cut short
		"4242 (nginx) S 4200 4100 4100 0 -1 0 0 0 0 0 x 1 0 0", // bad utime
	} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): want an error", bad)
		}
	}
}

func TestParseCPUStat(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice: guest is
	// already in user, so the total is the first eight.
	got, err := parseCPUStat("cpu  1540303 0 423428 1201713 79581 0 79422 132015 55 0")
	if err != nil {
		t.Fatal(err)
	}
	want := cpuTimes{total: 1540303 + 423428 + 1201713 + 79581 + 79422 + 132015, steal: 132015}
	if got != want {
		t.Fatalf("parseCPUStat = %+v, want %+v", got, want)
	}

	// A kernel without the steal column.
	got, err = parseCPUStat("cpu 10 0 5 85 0 0 0")
	if err != nil || got != (cpuTimes{total: 100}) {
		t.Fatalf("parseCPUStat without steal = %+v, %v; want total 100, steal 0", got, err)
	}

	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 x 4 5 6 7 8", "intr 1 2 3 4 5"} {
		if _, err := parseCPUStat(bad); err == nil {
			t.Errorf("parseCPUStat(%q): want an error", bad)
		}
	}
}

func TestStealShare(t *testing.T) {
	a := cpuTimes{total: 1000, steal: 100}
	b := cpuTimes{total: 1400, steal: 280}
	if got, ok := stealShare(a, b); !ok || math.Abs(got-0.45) > 1e-9 {
		t.Fatalf("stealShare = %v, %v; want 0.45", got, ok)
	}
	if _, ok := stealShare(b, b); ok {
		t.Fatal("stealShare over no time: want not ok")
	}

	s := summarizeSteal([]cpuUse{
		{steal: 0.5, stealOK: true, totalTicks: 400, stealTicks: 200},
		{stealOK: false},
		{steal: 0.25, stealOK: true, totalTicks: 400, stealTicks: 100},
	})
	if s.runs != 2 || s.unknown != 1 || s.least != 0.25 || s.most != 0.5 || math.Abs(s.share-0.375) > 1e-9 {
		t.Fatalf("summarizeSteal = %+v; want 2 runs, 1 unknown, 25%%..50%%, 37.5%% overall", s)
	}
}

func TestTreeTicks(t *testing.T) {
	procs := []procStat{
		{pid: 1, ppid: 0, pgrp: 1, ticks: 1000},
		{pid: 100, ppid: 50, pgrp: 100, ticks: 1},   // the watchdog shell
		{pid: 101, ppid: 100, pgrp: 100, ticks: 5},  // varnishd manager
		{pid: 102, ppid: 101, pgrp: 100, ticks: 70}, // its cache child
		{pid: 103, ppid: 1, pgrp: 100, ticks: 9},    // orphan adopted by init, still in the group
		{pid: 200, ppid: 50, pgrp: 200, ticks: 500}, // another server
		{pid: 201, ppid: 102, pgrp: 201, ticks: 4},  // a descendant that left the group
	}
	if got := treeTicks(procs, 100); got != 1+5+70+9+4 {
		t.Fatalf("treeTicks(100) = %d, want %d", got, 1+5+70+9+4)
	}
	if got := treeTicks(procs, 200); got != 500 {
		t.Fatalf("treeTicks(200) = %d, want 500", got)
	}
	if got := treeTicks(procs, 999); got != 0 {
		t.Fatalf("treeTicks of a missing pid = %d, want 0", got)
	}
}

func TestParseAuxvClkTck(t *testing.T) {
	w := strconv.IntSize / 8
	auxv := func(pairs ...uint64) []byte {
		b := make([]byte, len(pairs)*w)
		for i, v := range pairs {
			if w == 4 {
				binary.NativeEndian.PutUint32(b[i*w:], uint32(v))
			} else {
				binary.NativeEndian.PutUint64(b[i*w:], v)
			}
		}
		return b
	}
	// AT_PAGESZ 4096, AT_CLKTCK 250, AT_NULL.
	if hz, ok := parseAuxvClkTck(auxv(6, 4096, 17, 250, 0, 0)); !ok || hz != 250 {
		t.Fatalf("parseAuxvClkTck = %d, %v; want 250", hz, ok)
	}
	// AT_CLKTCK after AT_NULL does not count.
	if _, ok := parseAuxvClkTck(auxv(6, 4096, 0, 0, 17, 250)); ok {
		t.Fatal("parseAuxvClkTck found AT_CLKTCK after AT_NULL")
	}
	if _, ok := parseAuxvClkTck(nil); ok {
		t.Fatal("parseAuxvClkTck(nil): want not ok")
	}
}

func TestCPUPerRequest(t *testing.T) {
	r := wrkRun{wrkResult: wrkResult{Requests: 100_000}, cpu: cpuUse{serverSec: 2.5}}
	if v, ok := r.cpuPerRequest(); !ok || math.Abs(v-25) > 1e-9 {
		t.Fatalf("cpuPerRequest = %v, %v; want 25 µs", v, ok)
	}
	r.cpu.serverSec = -1
	if _, ok := r.cpuPerRequest(); ok {
		t.Fatal("cpuPerRequest with unknown CPU: want not ok")
	}
}

// TestSampleSelf reads this process's own figures from /proc.
func TestSampleSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s := sampleLoad(os.Getpid())
	if !s.ticksOK || !s.cpuOK || s.machine.total == 0 {
		t.Fatalf("sampleLoad(self) = %+v; want this process and /proc/stat found", s)
	}
	if hz, from := clockTicks(); hz <= 0 {
		t.Fatalf("clockTicks = %d (%s)", hz, from)
	}
}
