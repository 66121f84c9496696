package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/cachegate/cachegate/bench/configs"
)

// gwSQLite is cachegate in its default configuration, on SQLite: the target
// the issue 5 verdicts are on.
const gwSQLite = "cachegate-sqlite"

// gw1CPU is the target running cachegate-sqlite's configuration with GOMAXPROCS=1.
const gw1CPU = "cachegate-sqlite-1cpu"

// gwNoLane is cachegate-sqlite with -fast-lane=false: every hit through
// net/http, so that the fast lane's worth is measured in each run.
const gwNoLane = "cachegate-sqlite-nolane"

// gwLog is cachegate-sqlite with its access log on, as a server runs by
// default (one text line per request, to the log file), where the other
// cachegate targets keep it off as nginx does: the log's cost per hit,
// measured in each run.
const gwLog = "cachegate-sqlite-log"

// goFloor is the target running bench/cmd/floor: the least a Go server does per answer.
const goFloor = "go-floor"

// bodies are the response sizes the throughput test measures.
var bodies = []struct{ name, path string }{
	{"1 KiB", "/bytes/1k"},
	{"100 KiB", "/bytes/100k"},
}

// target is one server measured: the upstream itself or a cache in front of it.
type target struct {
	name   string
	base   string // http://127.0.0.1:PORT
	prefix string // put before an upstream path: "" or "/fetch/bench"
	health string // path answering 200 without touching any cache entry
	cached bool   // false for the upstream called directly
	proc   *proc
	skip   string   // why the target is not measured; empty when live
	env    []string // variables ("K=V") its process is started with, on top of the runner's
	// hitsOnly: measured in the cache-hit throughput runs only, not in the
	// herd and miss-overhead tests (a variant of another target).
	hitsOnly bool
}

func (t *target) url(path string) string { return t.base + t.prefix + path }

// bench holds the running servers.
type bench struct {
	cfg         config
	tools       map[string]string
	upstream    *target
	targets     []*target // upstream first, then the caches, skipped ones included
	procs       []*proc
	gatewayNote string   // why cachegate is not measured, if it is not
	gwBin       string   // the built gateway, empty if it did not build
	loads       []cpuUse // every wrk run's CPU figures, in order, for the steal share
}

// live returns the targets being measured, the upstream first.
func (b *bench) live() []*target {
	var ts []*target
	for _, t := range b.targets {
		if t.skip == "" {
			ts = append(ts, t)
		}
	}
	return ts
}

// liveFull returns the live targets that take part in every test, not only
// in the cache-hit throughput runs.
func (b *bench) liveFull() []*target {
	var ts []*target
	for _, t := range b.live() {
		if !t.hitsOnly {
			ts = append(ts, t)
		}
	}
	return ts
}

func (b *bench) stopAll() {
	for _, p := range slices.Backward(b.procs) {
		p.stop()
	}
	b.procs = nil
}

// start starts a server and waits until its health path answers.
// Daemons that fork workers (supervised) run under the watchdog shell.
func (b *bench) start(ctx context.Context, t *target, supervised bool, bin string, args ...string) error {
	p, err := startProc(t.name, filepath.Join(b.cfg.dir, t.name+".log"), supervised, t.env, bin, args...)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	t.proc = p
	return waitHTTP(ctx, p, t.base+t.health, 20*time.Second)
}

// startUpstream builds and starts bench/cmd/upstream as b.upstream and
// returns its port.
func (b *bench) startUpstream(ctx context.Context) (int, error) {
	logf("building the upstream")
	upBin := filepath.Join(b.cfg.dir, "upstream")
	if out, err := runCmd(ctx, 5*time.Minute, filepath.Join(b.cfg.root, "bench"), "go", "build", "-o", upBin, "./cmd/upstream"); err != nil {
		return 0, fmt.Errorf("build bench/cmd/upstream: %w\n%s", err, out)
	}
	upPort, err := freePort()
	if err != nil {
		return 0, err
	}
	b.upstream = &target{name: "upstream", base: "http://127.0.0.1:" + strconv.Itoa(upPort), health: "/healthz"}
	b.targets = append(b.targets, b.upstream)
	logf("starting the upstream on %s", b.upstream.base)
	return upPort, b.start(ctx, b.upstream, false, upBin, "-listen", "127.0.0.1:"+strconv.Itoa(upPort))
}

func (b *bench) startAll(ctx context.Context) error {
	dir := b.cfg.dir
	upPort, err := b.startUpstream(ctx)
	if err != nil {
		return err
	}
	logf("building the gateway (./cmd/server)")
	gwBin := filepath.Join(dir, "cachegate")
	if out, err := runCmd(ctx, 5*time.Minute, b.cfg.root, "go", "build", "-o", gwBin, "./cmd/server"); err != nil {
		b.gatewayNote = "SKIPPED: the gateway did not build (`go build ./cmd/server`): " + firstLine(out, err)
		logf("%s", b.gatewayNote)
		gwBin = ""
	}
	b.gwBin = gwBin

	port := func() int {
		p, err := freePort()
		if err != nil {
			panic(err) // loopback without a free port: nothing else would work either
		}
		return p
	}
	loop := func(p int) string { return "http://127.0.0.1:" + strconv.Itoa(p) }

	// nginx
	ng := &target{name: "nginx", base: "", health: "/healthz", cached: true}
	ngPort := port()
	ng.base = loop(ngPort)
	ngDir := filepath.Join(dir, "nginx")
	params := configs.Params{Dir: ngDir, Port: ngPort, UpstreamPort: upPort, Workers: b.cfg.Workers, RunAsRoot: os.Geteuid() == 0}
	b.targets = append(b.targets, ng)
	if err := os.MkdirAll(ngDir, 0o700); err != nil {
		return err
	}
	if err := render("nginx.conf.tmpl", filepath.Join(ngDir, "nginx.conf"), params); err != nil {
		return err
	}
	logf("starting nginx on %s", ng.base)
	if err := b.start(ctx, ng, true, b.tools["nginx"], "-p", ngDir, "-c", filepath.Join(ngDir, "nginx.conf"), "-e", filepath.Join(ngDir, "error.log")); err != nil {
		ng.skip = "SKIPPED: " + err.Error()
		logf("nginx: %v", err)
	}

	// Varnish
	vn := &target{name: "varnish", health: "/healthz", cached: true}
	vnPort := port()
	vn.base = loop(vnPort)
	vnDir := filepath.Join(dir, "varnish")
	params.Dir, params.Port = vnDir, vnPort
	b.targets = append(b.targets, vn)
	if err := os.MkdirAll(vnDir, 0o700); err != nil {
		return err
	}
	vcl := filepath.Join(vnDir, "bench.vcl")
	if err := render("varnish.vcl.tmpl", vcl, params); err != nil {
		return err
	}
	logf("starting Varnish on %s", vn.base)
	if err := b.start(ctx, vn, true, b.tools["varnishd"], b.varnishArgs(vnDir, vnPort, vcl)...); err != nil {
		vn.skip = "SKIPPED: " + err.Error()
		logf("varnish: %v", err)
	}

	// cachegate, one process per backend. cachegate-sqlite-1cpu is
	// cachegate-sqlite on its own file with GOMAXPROCS=1, for the cache-hit
	// runs only: on CPUs shared with wrk, one P trades peak parallelism for a
	// shorter tail (see bench/README.md).
	type gateway struct {
		name, dsn string
		env       []string
		args      []string
		hitsOnly  bool
	}
	gateways := []gateway{{name: gwSQLite, dsn: "sqlite://" + filepath.Join(dir, "cachegate.db")}}
	if !b.cfg.No1CPU {
		gateways = append(gateways, gateway{name: gw1CPU, dsn: "sqlite://" + filepath.Join(dir, "cachegate-1cpu.db"), env: []string{"GOMAXPROCS=1"}, hitsOnly: true})
	}
	gateways = append(gateways, gateway{name: gwNoLane, dsn: "sqlite://" + filepath.Join(dir, "cachegate-nolane.db"), args: []string{"-fast-lane=false"}, hitsOnly: true})
	gateways = append(gateways, gateway{name: gwLog, dsn: "sqlite://" + filepath.Join(dir, "cachegate-log.db"), args: []string{"-access-log", "all"}, hitsOnly: true})
	gateways = append(gateways, gateway{name: "cachegate-memory", dsn: "memory://"})
	if b.cfg.MongoDB != "" {
		gateways = append(gateways, gateway{name: "cachegate-mongodb", dsn: b.cfg.MongoDB})
	}
	for _, g := range gateways {
		p := port()
		t := &target{name: g.name, base: loop(p), prefix: "/fetch/bench", health: "/healthz", cached: true, env: g.env, hitsOnly: g.hitsOnly}
		b.targets = append(b.targets, t)
		if gwBin == "" {
			t.skip = "SKIPPED: gateway not built"
			continue
		}
		logf("starting %s on %s", g.name, t.base)
		err := b.start(ctx, t, false, gwBin, append(b.gatewayArgs(p, g.dsn), g.args...)...)
		if err != nil {
			t.skip = "SKIPPED: " + err.Error()
			logf("%s: %v", g.name, err)
		}
	}
	if !b.cfg.NoFloor {
		b.startFloor(ctx, port(), loop)
	}
	return ctx.Err()
}

// startFloor builds and starts bench/cmd/floor as the target go-floor, for the
// cache-hit runs only: not a cache, but the least any Go server does per
// answer on this runtime, so cachegate's p99 can be read against it. A floor
// that does not build or start is reported as skipped; the rest goes on.
func (b *bench) startFloor(ctx context.Context, p int, loop func(int) string) {
	t := &target{name: goFloor, base: loop(p), health: "/healthz", hitsOnly: true}
	b.targets = append(b.targets, t)
	bin := filepath.Join(b.cfg.dir, "floor")
	if out, err := runCmd(ctx, 5*time.Minute, filepath.Join(b.cfg.root, "bench"), "go", "build", "-o", bin, "./cmd/floor"); err != nil {
		t.skip = "SKIPPED: `go -C bench build ./cmd/floor`: " + firstLine(out, err)
		logf("%s: %s", goFloor, t.skip)
		return
	}
	logf("starting %s on %s", goFloor, t.base)
	if err := b.start(ctx, t, false, bin, "-listen", "127.0.0.1:"+strconv.Itoa(p)); err != nil {
		t.skip = "SKIPPED: " + err.Error()
		logf("%s: %v", goFloor, err)
	}
}

// gatewayArgs runs cachegate on a loopback port and backend dsn, in front of
// the upstream as "bench", storing what the upstream does not date for 1h.
func (b *bench) gatewayArgs(port int, dsn string) []string {
	return []string{
		"-listen", "127.0.0.1:" + strconv.Itoa(port),
		"-backend", dsn,
		"-upstream", "bench=" + b.upstream.base,
		"-expire-after", "1h",
		// Off like nginx's access_log in its configuration; gwLog turns
		// it back on (a later flag wins).
		"-access-log", "off",
	}
}

// varnishArgs runs varnishd in the foreground with no management port, no
// privilege jail (the work directory is private), and one small thread pool.
func (b *bench) varnishArgs(dir string, port int, vcl string) []string {
	return []string{
		"-F", "-j", "none", "-n", dir, "-T", "none",
		"-a", "127.0.0.1:" + strconv.Itoa(port),
		"-f", vcl,
		"-s", "malloc,256m",
		"-p", "thread_pools=1",
		"-p", "thread_pool_min=" + strconv.Itoa(b.cfg.VarnishMin),
		"-p", "thread_pool_max=" + strconv.Itoa(max(1000, b.cfg.VarnishMin)),
	}
}

func render(name, dst string, params configs.Params) error {
	tmpl, err := template.ParseFS(configs.FS, name)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, params); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	return os.WriteFile(dst, buf.Bytes(), 0o600)
}

func firstLine(out string, err error) string {
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return err.Error()
}

// fetch GETs url and returns the status, X-Cache and body length.
func fetch(ctx context.Context, client *http.Client, url string) (int, string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache"), int(n), err
}

// warm requests each body through each cache until it answers X-Cache: HIT,
// so the throughput runs measure hits only. A cache that never says HIT is
// still measured, with a note in the report.
func (b *bench) warm(ctx context.Context, rep *report) error {
	client := &http.Client{Timeout: 10 * time.Second}
	for _, t := range b.live() {
		for _, body := range bodies {
			hit := false
			var last string
			for try := 0; try < 10 && !hit; try++ {
				status, xc, _, err := fetch(ctx, client, t.url(body.path))
				switch {
				case err != nil:
					last = err.Error()
				case status != http.StatusOK:
					last = fmt.Sprintf("status %d", status)
				default:
					last = "X-Cache: " + xc
					hit = !t.cached || strings.HasPrefix(strings.ToUpper(xc), "HIT")
				}
				if !hit {
					time.Sleep(50 * time.Millisecond)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			if !hit {
				rep.notes = append(rep.notes, fmt.Sprintf("%s %s: no HIT after warming (last answer %s); its figures may be misses", t.name, body.name, last))
			}
		}
	}
	return nil
}

// upstreamRequests reads how many requests the upstream has served.
func (b *bench) upstreamRequests(ctx context.Context) int {
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.upstream.base+"/_stats", nil)
	resp, err := client.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var s string
	buf, _ := io.ReadAll(resp.Body)
	s = string(buf)
	// {"requests":N,...}
	s, _ = strings.CutPrefix(s, `{"requests":`)
	s, _, _ = strings.Cut(s, ",")
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// wrkRun is one wrk run's outcome.
type wrkRun struct {
	wrkResult
	upstreamHits int    // requests the upstream saw during the run (excluding the one reading its stats)
	cpu          cpuUse // the target's CPU time and the machine's steal during the run
}

// load runs wrk against t (url, extra as runWrk takes them) and reads around
// it the upstream's request counter, the CPU time of t's processes and the
// machine's CPU times. The /proc samples are taken right next to wrk, the
// counter outside them, so its requests do not count as t's CPU.
func (b *bench) load(ctx context.Context, t *target, url string, extra ...string) (wrkRun, error) {
	before := b.upstreamRequests(ctx)
	pid := pidOf(t)
	s0 := sampleLoad(pid)
	res, err := runWrk(ctx, b.cfg, url, extra...)
	s1 := sampleLoad(pid)
	if err != nil {
		return wrkRun{}, err
	}
	after := b.upstreamRequests(ctx)
	ru := wrkRun{wrkResult: res, upstreamHits: after - before - 1, cpu: cpuBetween(s0, s1)}
	b.loads = append(b.loads, ru.cpu)
	return ru, nil
}

// logRun prints one run's figures as progress.
func logRun(what string, ru wrkRun) {
	cpu, steal := "cpu ?", "steal ?"
	if v, ok := ru.cpuPerRequest(); ok {
		cpu = fmt.Sprintf("cpu %.1f µs/req", v)
	}
	if ru.cpu.stealOK {
		steal = fmt.Sprintf("steal %.0f%%", 100*ru.cpu.steal)
	}
	logf("%s %9.0f req/s  p99 %-9v %s  %s", what, ru.ReqPerSec, ru.P99, cpu, steal)
}

// throughput runs wrk over all targets and bodies in interleaved rounds.
// results[target][body] holds one run per round.
func (b *bench) throughput(ctx context.Context) (map[string]map[string][]wrkRun, error) {
	results := map[string]map[string][]wrkRun{}
	for r := 1; r <= b.cfg.Rounds; r++ {
		for _, body := range bodies {
			for _, t := range b.live() {
				ru, err := b.load(ctx, t, t.url(body.path))
				if err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					return nil, err
				}
				if t.proc.exited() {
					return nil, fmt.Errorf("%s exited during the run (%s); its output ends:\n%s", t.name, exitText(t.proc.err), t.proc.logTail(15))
				}
				if results[t.name] == nil {
					results[t.name] = map[string][]wrkRun{}
				}
				results[t.name][body.name] = append(results[t.name][body.name], ru)
				logRun(fmt.Sprintf("round %d %-21s %-8s", r, t.name, body.name), ru)
			}
		}
	}
	return results, nil
}
