// Command benchrun measures cachegate's cache hits side by side with nginx
// proxy_cache and Varnish, all in front of the same in-memory upstream
// (bench/upstream), and writes the figures to bench/RESULTS.md.
//
// It installs nginx, varnish and wrk from Debian when they are missing, builds
// the upstream and the gateway, starts every server on a loopback port in a
// private temporary directory, and stops all of them when it ends, on error
// and on Ctrl-C alike. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the flags and BENCH_* variables set.
type config struct {
	Rounds      int
	Duration    time.Duration // of one wrk run
	Threads     int           // wrk -t
	Connections int           // wrk -c
	Herd        int           // simultaneous first requests
	Herds       int           // herds per cache, interleaved across the caches
	HerdDelay   time.Duration // the upstream's latency in the herd test
	MissSamples int
	Workers     int // nginx worker_processes
	VarnishMin  int // thread_pool_min (one pool)
	Out         string
	Install     bool
	MongoDB     string // optional mongodb:// DSN for a cachegate-mongodb target
	Timeout     time.Duration
	Entries     int           // entries in the million-entry SQLite cache
	NoMillion   bool          // skip the million-entry figures
	No1CPU      bool          // skip the cachegate-sqlite-1cpu target (GOMAXPROCS=1)
	NoFloor     bool          // skip the go-floor target (bench/cmd/floor)
	Quick       bool          // -quick: fewer, shorter runs
	Soak        time.Duration // length of the soak; 0 skips it
	Only        string        // "soak": run that step alone

	root, dir string // repository root; private temporary directory
	wrkBin    string
}

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	envInt := func(k string, def int) int {
		if n, err := strconv.Atoi(getenv(k)); err == nil {
			return n
		}
		return def
	}
	envDur := func(k string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(getenv(k)); err == nil {
			return d
		}
		return def
	}
	var c config
	quick := getenv("BENCH_QUICK") != "" && getenv("BENCH_QUICK") != "0"
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&quick, "quick", quick, "quick mode: 1 round of 2s, 50 miss samples, 2 herds, 100000 entries (env BENCH_QUICK=1)")
	fs.IntVar(&c.Rounds, "rounds", envInt("BENCH_ROUNDS", 3), "interleaved rounds over all targets (env BENCH_ROUNDS)")
	fs.DurationVar(&c.Duration, "duration", envDur("BENCH_DURATION", 5*time.Second), "length of one wrk run (env BENCH_DURATION)")
	fs.IntVar(&c.Threads, "threads", envInt("BENCH_THREADS", 2), "wrk threads")
	fs.IntVar(&c.Connections, "connections", envInt("BENCH_CONNECTIONS", 64), "wrk connections")
	fs.IntVar(&c.Herd, "herd", 200, "simultaneous first requests in the herd test")
	fs.IntVar(&c.Herds, "herds", envInt("BENCH_HERDS", 5), "herds per cache in the herd test, interleaved across the caches (env BENCH_HERDS; -quick: 2)")
	fs.DurationVar(&c.HerdDelay, "herd-delay", 100*time.Millisecond, "upstream latency in the herd test")
	fs.IntVar(&c.MissSamples, "miss-samples", envInt("BENCH_MISS_SAMPLES", 200), "unique-URL misses per target")
	fs.IntVar(&c.Workers, "nginx-workers", 2, "nginx worker_processes")
	fs.IntVar(&c.VarnishMin, "varnish-threads", 200, "Varnish thread_pool_min (one pool)")
	fs.StringVar(&c.Out, "out", "", "results file (default bench/RESULTS.md in the repository)")
	noInstall := fs.Bool("no-install", false, "do not apt-get install missing tools")
	fs.StringVar(&c.MongoDB, "mongodb", getenv("BENCH_MONGODB_URI"), "also run cachegate on this mongodb:// DSN (env BENCH_MONGODB_URI)")
	fs.DurationVar(&c.Timeout, "timeout", 45*time.Minute, "give up after this long")
	fs.IntVar(&c.Entries, "entries", envInt("BENCH_ENTRIES", 1_000_000), "entries in the SQLite cache of the million-entry figures (env BENCH_ENTRIES; -quick: 100000)")
	fs.BoolVar(&c.NoMillion, "no-million", false, "skip the million-entry figures (the 200 MiB streaming test still runs)")
	fs.BoolVar(&c.No1CPU, "no-1cpu", false, "skip the cachegate-sqlite-1cpu target (cachegate-sqlite started with GOMAXPROCS=1, cache-hit runs only)")
	fs.DurationVar(&c.Soak, "soak", envDur("BENCH_SOAK", time.Minute), "length of the soak: mixed hits, misses, admin calls and slow clients against one gateway, then its goroutines and RSS against the baseline; 0 skips it (env BENCH_SOAK; -quick: 20s)")
	fs.StringVar(&c.Only, "only", "", "run one step alone: soak (builds the upstream and the soak gateway only) or million (the million-entry figures, the admin pages' among them, and the 200 MiB stream); prints its section, and writes it to -out only when -out is given")
	fs.BoolVar(&c.NoFloor, "no-floor", false, "skip the go-floor target (bench/cmd/floor, a bare Go server with fixed answers, cache-hit runs only)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.Install = !*noInstall
	c.Quick = quick
	if quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			c.Rounds = 1
		}
		if !set["duration"] {
			c.Duration = 2 * time.Second
		}
		if !set["miss-samples"] {
			c.MissSamples = 50
		}
		if !set["entries"] && getenv("BENCH_ENTRIES") == "" {
			c.Entries = 100_000
		}
		if !set["herds"] && getenv("BENCH_HERDS") == "" {
			c.Herds = 2
		}
		if !set["soak"] && getenv("BENCH_SOAK") == "" {
			c.Soak = 20 * time.Second
		}
	}
	switch {
	case c.Rounds < 1, c.Duration < time.Second, c.Threads < 1, c.Connections < c.Threads,
		c.Herd < 1, c.Herd > 2000, c.Herds < 1, c.Herds > 100, c.HerdDelay <= 0, c.HerdDelay > 10*time.Second, c.MissSamples < 1,
		c.Entries < minEntries, c.Entries > 50_000_000, c.Soak < 0, c.Soak > time.Hour:
		return c, fmt.Errorf("bad flags: want rounds >= 1, duration >= 1s, connections >= threads >= 1, herd 1..2000, herds 1..100, herd-delay up to 10s, miss-samples >= 1, entries %d..50000000, soak 0..1h", minEntries)
	}
	switch c.Only {
	case "":
	case "soak":
		if c.Soak <= 0 {
			return c, errors.New("bad flags: -only soak with -soak 0 runs nothing")
		}
	case "million":
		if c.NoMillion {
			return c, errors.New("bad flags: -only million with -no-million runs nothing")
		}
	default:
		return c, fmt.Errorf("bad flags: -only %q: want soak or million", c.Only)
	}
	c.Duration = c.Duration.Round(time.Second) // wrk takes whole seconds
	return c, nil
}

func main() {
	cfg, err := loadConfig(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM) // stops every server on Ctrl-C
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted; every server it started has been stopped")
		}
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) (err error) {
	if cfg.root, err = repoRoot(); err != nil {
		return err
	}
	switch cfg.Only {
	case "soak":
		return runSoakOnly(ctx, cfg)
	case "million":
		return runMillionOnly(ctx, cfg)
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(cfg.root, "bench", "RESULTS.md")
	}
	tools, err := ensureTools(ctx, cfg.Install)
	if err != nil {
		return err
	}
	cfg.wrkBin = tools["wrk"]

	if cfg.dir, err = os.MkdirTemp("", "cachegate-benchrun-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.dir)

	machine := machineInfo(ctx, cfg, tools) // before the builds load the machine
	b := &bench{cfg: cfg, tools: tools}
	defer b.stopAll()

	if err := b.startAll(ctx); err != nil {
		return err
	}
	rep := &report{cfg: cfg, started: time.Now(), machine: machine, targets: b.targets, gatewayNote: b.gatewayNote}
	if cfg.MongoDB != "" {
		if rep.mongoServer, err = mongoServer(ctx, cfg.MongoDB); err != nil {
			rep.mongoServer = "a server that did not answer buildInfo (" + err.Error() + ")"
		}
	}

	logf("warming caches")
	if err := b.warm(ctx, rep); err != nil {
		return err
	}
	logf("throughput: %d round(s) x %d targets x %d bodies x %s", cfg.Rounds, len(b.live()), len(bodies), cfg.Duration)
	if rep.throughput, err = b.throughput(ctx); err != nil {
		return err
	}
	for _, t := range b.live() {
		rep.rss = append(rep.rss, rssLine{t.name, t.proc.rssKiB()})
	}
	logf("herd: %d herd(s) per cache of %d simultaneous first requests, upstream latency %s", cfg.Herds, cfg.Herd, cfg.HerdDelay)
	if rep.herd, err = b.herdAll(ctx); err != nil {
		return err
	}
	logf("miss overhead: %d unique URLs per target", cfg.MissSamples)
	if rep.miss, err = b.missOverhead(ctx); err != nil {
		return err
	}
	rep.million = b.millionEntryFigures(ctx)
	rep.loads = b.loads
	logf("soak: %s", cfg.Soak)
	rep.soak = b.soakFigures(ctx)

	text := rep.markdown()
	fmt.Print("\n" + text)
	if err := os.WriteFile(cfg.Out, []byte(text), 0o644); err != nil {
		return err
	}
	logf("wrote %s", cfg.Out)
	return nil
}

// runMillionOnly runs the million-entry figures alone (-only million):
// wrk, the upstream and the gateway binary, no peers.
func runMillionOnly(ctx context.Context, cfg config) (err error) {
	tools, err := ensureTools(ctx, cfg.Install)
	if err != nil {
		return err
	}
	cfg.wrkBin = tools["wrk"]
	if cfg.dir, err = os.MkdirTemp("", "cachegate-benchrun-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.dir)
	b := &bench{cfg: cfg, tools: tools}
	defer b.stopAll()
	if _, err := b.startUpstream(ctx); err != nil {
		return err
	}
	logf("building the gateway (./cmd/server)")
	b.gwBin = filepath.Join(cfg.dir, "cachegate")
	if out, err := runCmd(ctx, 5*time.Minute, cfg.root, "go", "build", "-o", b.gwBin, "./cmd/server"); err != nil {
		return fmt.Errorf("go build ./cmd/server: %s", firstLine(out, err))
	}
	return printSection(cfg, "million", b.millionEntryFigures(ctx))
}

// printSection prints one step's section (and writes it to -out when
// given) and fails when one of its checks did.
func printSection(cfg config, step string, sec section) error {
	var text strings.Builder
	fmt.Fprintf(&text, "# cachegate %s\n\n`go -C bench run ./cmd/benchrun -only %s` on %s; see bench/README.md.\n\n## %s\n\n%s\n", step, step, time.Now().UTC().Format("2006-01-02 15:04 MST"), sec.title, sec.body)
	for _, c := range sec.checks {
		fmt.Fprintf(&text, "- %s\n", c)
	}
	fmt.Print("\n" + text.String())
	if cfg.Out != "" {
		if err := os.WriteFile(cfg.Out, []byte(text.String()), 0o644); err != nil {
			return err
		}
		logf("wrote %s", cfg.Out)
	}
	for _, c := range sec.checks {
		if strings.HasPrefix(c, "FAIL") {
			return fmt.Errorf("the %s step failed: %s", step, c)
		}
	}
	return nil
}

// runSoakOnly runs the soak alone (-only soak): the upstream and the soak
// gateway, no other target and no tools to install. The section goes to
// stdout, and to -out only when it was given: RESULTS.md keeps the full run.
func runSoakOnly(ctx context.Context, cfg config) (err error) {
	if cfg.dir, err = os.MkdirTemp("", "cachegate-benchrun-"); err != nil {
		return err
	}
	defer os.RemoveAll(cfg.dir)
	b := &bench{cfg: cfg}
	defer b.stopAll()
	if _, err := b.startUpstream(ctx); err != nil {
		return err
	}
	return printSection(cfg, "soak", b.soakFigures(ctx))
}

// logf prints progress to stderr, so stdout carries only the report.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

// repoRoot walks up from the working directory to the product's module root:
// the directory holding go.mod and cmd/server (bench/ has a go.mod of its own).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		_, modErr := os.Stat(filepath.Join(dir, "go.mod"))
		_, serverErr := os.Stat(filepath.Join(dir, "cmd", "server"))
		if modErr == nil && serverErr == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no cachegate module (go.mod and cmd/server) above the working directory: run from the repository")
		}
		dir = parent
	}
}
