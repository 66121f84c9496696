package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// CPU accounting around each wrk run.
//
// req/s and p99 on a virtual machine swing with the CPU time the hypervisor
// steals; the CPU time a server spends per request does not, because a guest
// kernel built with CONFIG_PARAVIRT_TIME_ACCOUNTING (as the Firecracker VM's
// is) does not charge stolen time to the task that was running. So every wrk
// run also records the CPU time of the target's processes and the machine's
// steal share (/proc/stat).

// procStat is what the runner reads from one /proc/<pid>/stat line.
type procStat struct {
	pid, ppid, pgrp int
	// ticks is utime + stime + cutime + cstime in clock ticks: the CPU time of
	// the process (all its threads, dead ones included) and of the children it
	// has reaped. Counting reaped children keeps a tree's sum steady when a
	// worker exits and its parent reaps it.
	ticks uint64
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (the second
// field) is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseProcStat(line string) (procStat, error) {
	var s procStat
	open := strings.IndexByte(line, '(')
	end := strings.LastIndexByte(line, ')')
	if open < 1 || end < open {
		return s, fmt.Errorf("proc stat: no (comm) in %q", line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return s, fmt.Errorf("proc stat: bad pid in %q", line)
	}
	// After ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime ... (proc(5), fields 3..17).
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return s, fmt.Errorf("proc stat: %d fields after (comm), want at least 15", len(f))
	}
	s.pid = pid
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("proc stat: bad ppid %q", f[1])
	}
	if s.pgrp, err = strconv.Atoi(f[2]); err != nil {
		return s, fmt.Errorf("proc stat: bad pgrp %q", f[2])
	}
	for _, v := range f[11:15] {
		// cutime and cstime are signed in the kernel's format; they are never
		// negative in practice.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return s, fmt.Errorf("proc stat: bad CPU time %q", v)
		}
		s.ticks += uint64(n)
	}
	return s, nil
}

// readProcs reads every process's stat line. Processes that end while it
// reads are left out.
func readProcs() []procStat {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	procs := make([]procStat, 0, len(dirs))
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		if s, err := parseProcStat(string(b)); err == nil {
			procs = append(procs, s)
		}
	}
	return procs
}

// treeTicks sums the ticks of root, its descendants (found by ppid: this
// kernel has no /proc/<pid>/task/<tid>/children) and the members of the
// process group root leads (the runner starts every server as a group
// leader), so an orphan that init has adopted still counts.
func treeTicks(procs []procStat, root int) uint64 {
	children := map[int][]int{}
	byPID := map[int]procStat{}
	for _, p := range procs {
		children[p.ppid] = append(children[p.ppid], p.pid)
		byPID[p.pid] = p
	}
	in := map[int]bool{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		if in[pid] {
			continue
		}
		if _, ok := byPID[pid]; !ok {
			continue
		}
		in[pid] = true
		queue = append(queue, children[pid]...)
	}
	for _, p := range procs {
		if p.pgrp == root {
			in[p.pid] = true
		}
	}
	var total uint64
	for pid := range in {
		total += byPID[pid].ticks
	}
	return total
}

// cpuTimes is the machine-wide `cpu` line of /proc/stat, in clock ticks.
type cpuTimes struct {
	total uint64 // user nice system idle iowait irq softirq steal
	steal uint64
}

// parseCPUStat parses the aggregate `cpu` line of /proc/stat: user nice system
// idle iowait irq softirq steal guest guest_nice. The total is the sum of the
// first eight (guest time is already counted in user and nice); steal, the
// eighth, is the time the hypervisor ran something else while this machine
// had work. Kernels too old to report steal give 0.
func parseCPUStat(line string) (cpuTimes, error) {
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("proc stat: not the cpu line: %q", line)
	}
	var c cpuTimes
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("proc stat: bad cpu field %q", v)
		}
		c.total += n
		if i == 7 {
			c.steal = n
		}
	}
	return c, nil
}

// readCPUTimes reads the `cpu` line of /proc/stat.
func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPUStat(line)
}

// stealShare is the fraction of the CPU time between two samples that the
// hypervisor stole, and whether it is known.
func stealShare(before, after cpuTimes) (float64, bool) {
	if after.total <= before.total || after.steal < before.steal {
		return 0, false
	}
	return float64(after.steal-before.steal) / float64(after.total-before.total), true
}

// atClkTck is the auxiliary vector entry holding the kernel's USER_HZ, the
// unit of every CPU time in /proc (what glibc's sysconf(_SC_CLK_TCK) returns).
const atClkTck = 17

// clockTicks returns USER_HZ read from /proc/self/auxv and where it came from;
// it assumes 100 (USER_HZ on every Linux architecture Go runs on) if the
// vector cannot be read.
var clockTicks = sync.OnceValues(func() (int, string) {
	if b, err := os.ReadFile("/proc/self/auxv"); err == nil {
		if hz, ok := parseAuxvClkTck(b); ok {
			return hz, "AT_CLKTCK in /proc/self/auxv"
		}
	}
	return 100, "assumed: /proc/self/auxv has no AT_CLKTCK"
})

// parseAuxvClkTck finds AT_CLKTCK in an auxiliary vector: pairs of native
// words (type, value) ending with type 0.
func parseAuxvClkTck(b []byte) (int, bool) {
	w := strconv.IntSize / 8
	word := func(b []byte) uint64 {
		if w == 4 {
			return uint64(binary.NativeEndian.Uint32(b))
		}
		return binary.NativeEndian.Uint64(b)
	}
	for i := 0; i+2*w <= len(b); i += 2 * w {
		typ, val := word(b[i:]), word(b[i+w:])
		if typ == 0 {
			break
		}
		if typ == atClkTck && val > 0 && val < 1_000_000 {
			return int(val), true
		}
	}
	return 0, false
}

// loadSample is what the runner reads just before and just after a wrk run.
type loadSample struct {
	ticks   uint64 // the target's processes
	ticksOK bool   // the target's first process was found
	machine cpuTimes
	cpuOK   bool // /proc/stat was read
}

func sampleLoad(root int) loadSample {
	var s loadSample
	if root > 0 {
		procs := readProcs()
		s.ticks = treeTicks(procs, root)
		s.ticksOK = containsPID(procs, root)
	}
	var err error
	s.machine, err = readCPUTimes()
	s.cpuOK = err == nil
	return s
}

func containsPID(procs []procStat, pid int) bool {
	for _, p := range procs {
		if p.pid == pid {
			return true
		}
	}
	return false
}

// cpuUse is the CPU side of one wrk run.
type cpuUse struct {
	serverSec float64 // CPU seconds of the target's processes; < 0 if unknown
	steal     float64 // the machine's steal share during the run
	stealOK   bool
	// machine-wide ticks during the run, to weigh runs in the overall share
	totalTicks, stealTicks uint64
}

func cpuBetween(before, after loadSample) cpuUse {
	u := cpuUse{serverSec: -1}
	if before.ticksOK && after.ticksOK && after.ticks >= before.ticks {
		hz, _ := clockTicks()
		u.serverSec = float64(after.ticks-before.ticks) / float64(hz)
	}
	if before.cpuOK && after.cpuOK {
		u.steal, u.stealOK = stealShare(before.machine, after.machine)
		if u.stealOK {
			u.totalTicks = after.machine.total - before.machine.total
			u.stealTicks = after.machine.steal - before.machine.steal
		}
	}
	return u
}

// cpuPerRequest is the server CPU time per completed request in µs, and
// whether it is known.
func (r wrkRun) cpuPerRequest() (float64, bool) {
	if r.cpu.serverSec < 0 || r.Requests <= 0 {
		return 0, false
	}
	return r.cpu.serverSec * 1e6 / float64(r.Requests), true
}

// stealSummary is the steal share over a set of wrk runs.
type stealSummary struct {
	runs        int     // runs with a steal figure
	unknown     int     // runs without one
	share       float64 // steal ticks over all CPU ticks of those runs
	least, most float64 // per run
}

func summarizeSteal(runs []cpuUse) stealSummary {
	var s stealSummary
	var steal, total uint64
	for _, u := range runs {
		if !u.stealOK {
			s.unknown++
			continue
		}
		if s.runs == 0 || u.steal < s.least {
			s.least = u.steal
		}
		if s.runs == 0 || u.steal > s.most {
			s.most = u.steal
		}
		s.runs++
		total += u.totalTicks
		steal += u.stealTicks
	}
	if total > 0 {
		s.share = float64(steal) / float64(total)
	}
	return s
}

// pidOf returns the process id the runner started for t, 0 if none.
func pidOf(t *target) int {
	if t == nil || t.proc == nil || t.proc.cmd == nil || t.proc.cmd.Process == nil {
		return 0
	}
	return t.proc.cmd.Process.Pid
}
