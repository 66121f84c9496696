package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The soak: a bounded run of mixed traffic against one gateway process, to
// show that it leaks neither goroutines nor memory. Hits, misses, admin
// calls and slow clients run together for -soak (60 s by default); the
// process's goroutines (from /debug/pprof/goroutine on a loopback debug
// listener, see bench/cmd/soakgw) and RSS are read before, every second
// during, and after, once the clients have gone.

// soakKinds are the traffic the soak mixes, with their workers: hits on a
// few hot URLs (keep-alive, as fast as they go), misses on new URLs at a
// fixed pace, admin listings and stats, clients that write their request a
// byte at a time and read a large answer slowly, and connections that never
// send anything (the server's header timeout must close them).
var soakKinds = []struct {
	name    string
	workers int
	what    string
}{
	{"hit", 6, "`GET /fetch/bench/bytes/1k?soak=N` over 100 hot URLs, keep-alive, back to back"},
	{"miss", 1, "`GET /fetch/bench/bytes/1k?miss=N` on a new URL every 20 ms (50/s), with `X-Cachegate-Expire-After: do_not_cache`: each one goes to the upstream and none is stored, so the cache does not grow under the soak"},
	{"admin", 1, "`GET /api/entries?limit=50&sort=size` and `GET /api/stats` in turn, one every 100 ms"},
	{"slow", 3, "a request written a byte every 20 ms, then a 1 MiB cached answer read 8 KiB every 50 ms (about 6.5 s each)"},
	{"idle", 2, "a connection that sends nothing until the server closes it (its header timeout, 10 s)"},
}

// soakHot is the number of hot URLs the hit workers go round.
const soakHot = 100

// soakCount is what one kind of traffic did.
type soakCount struct {
	requests, errors int
	lastErr          string
}

// soakResult is what the soak measured.
type soakResult struct {
	duration           time.Duration
	counts             map[string]*soakCount
	baseRSS, peakRSS   int // KiB
	endRSS             int
	baseG, peakG, endG int
	// baseEntries and endEntries are the cache's entries before and after:
	// equal when no miss was stored, as the soak asks.
	baseEntries, endEntries int64
	settled                 time.Duration // after the load, until goroutines were back
	settleLimit             time.Duration
	upstreamCallsDuring     int
	slackG                  int
	rssLimitKiB             int
	gatewayExitedUnderLoad  string
	baseMem, endMem         map[string]int64 // runtime.MemStats before and after
}

// soakGateway builds bench/cmd/soakgw and starts it on a fresh SQLite file
// in front of the upstream.
func (b *bench) soakGateway(ctx context.Context) (*target, string, error) {
	bin := filepath.Join(b.cfg.dir, "soakgw")
	if out, err := runCmd(ctx, 5*time.Minute, filepath.Join(b.cfg.root, "bench"), "go", "build", "-o", bin, "./cmd/soakgw"); err != nil {
		return nil, "", fmt.Errorf("build bench/cmd/soakgw: %s", firstLine(out, err))
	}
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	dport, err := freePort()
	if err != nil {
		return nil, "", err
	}
	t := &target{name: "cachegate-soak", base: "http://127.0.0.1:" + strconv.Itoa(port), prefix: "/fetch/bench", health: "/healthz", cached: true}
	debug := "http://127.0.0.1:" + strconv.Itoa(dport)
	logf("starting %s on %s (pprof on %s)", t.name, t.base, debug)
	err = b.start(ctx, t, false, bin,
		"-listen", "127.0.0.1:"+strconv.Itoa(port),
		"-debug-listen", "127.0.0.1:"+strconv.Itoa(dport),
		"-backend", "sqlite://"+filepath.Join(b.cfg.dir, "soak.db"),
		"-upstream", "bench="+b.upstream.base,
		"-expire-after", "1h")
	return t, debug, err
}

var goroutineTotal = regexp.MustCompile(`^goroutine profile: total (\d+)`)

// goroutines reads the gateway's goroutine count from its debug listener.
func goroutines(ctx context.Context, client *http.Client, debug string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debug+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	m := goroutineTotal.FindStringSubmatch(line)
	if m == nil {
		return 0, fmt.Errorf("goroutine profile starts %q", line)
	}
	return strconv.Atoi(m[1])
}

// memStats reads the runtime.MemStats the heap profile ends with (debug=1):
// what of the RSS is Go's heap, and what the runtime holds but does not use.
func memStats(ctx context.Context, client *http.Client, debug string) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, debug+"/debug/pprof/heap?debug=1", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// # HeapInuse = 1234
		name, v, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[name] = n
		}
	}
	return out, sc.Err()
}

// collect runs a garbage collection in the gateway and has it return the
// freed memory to the OS (soakgw's debug.FreeOSMemory), so RSS is compared
// after the same kind of moment and counts what the process holds, not
// what its runtime has yet to give back.
func collect(ctx context.Context, client *http.Client, debug string) {
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, debug+"/debug/free-os-memory", nil); err == nil {
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// soak runs the soak against a gateway of its own.
func (b *bench) soak(ctx context.Context) (*soakResult, error) {
	t, debug, err := b.soakGateway(ctx)
	if err != nil {
		return nil, err
	}
	res := &soakResult{duration: b.cfg.Soak, counts: map[string]*soakCount{}, slackG: 5, settleLimit: 30 * time.Second}
	for _, k := range soakKinds {
		res.counts[k.name] = &soakCount{}
	}
	dbg := &http.Client{Timeout: 10 * time.Second}
	defer dbg.CloseIdleConnections()

	// Warm the hot URLs and the slow clients' large answers, so that the
	// baseline is taken with the cache holding what the load asks for.
	warm := &http.Client{Timeout: 30 * time.Second}
	for i := range soakHot {
		for range 2 {
			if _, _, _, err := fetch(ctx, warm, t.url(fmt.Sprintf("/bytes/1k?soak=%d", i))); err != nil {
				return nil, fmt.Errorf("warm: %w", err)
			}
		}
	}
	for i := range soakKinds[3].workers {
		if _, _, _, err := fetch(ctx, warm, t.url(fmt.Sprintf("/bytes/1m?slow=%d", i))); err != nil {
			return nil, fmt.Errorf("warm: %w", err)
		}
	}
	warm.CloseIdleConnections()
	collect(ctx, dbg, debug)
	if res.baseG, err = goroutines(ctx, dbg, debug); err != nil {
		return nil, err
	}
	res.baseRSS = t.proc.rssKiB()
	res.peakRSS, res.peakG = res.baseRSS, res.baseG
	if res.baseMem, err = memStats(ctx, dbg, debug); err != nil {
		return nil, err
	}
	if res.baseEntries, err = entriesIn(ctx, dbg, t.base); err != nil {
		return nil, err
	}
	upBefore := b.upstreamRequests(ctx)
	logf("soak: %s of mixed traffic; baseline %d goroutines, %s RSS", b.cfg.Soak, res.baseG, mib(res.baseRSS))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex // protects res.counts' values while the load runs
	record := func(kind string, err error) {
		c := res.counts[kind]
		mu.Lock()
		defer mu.Unlock()
		c.requests++
		if err != nil {
			c.errors++
			c.lastErr = err.Error()
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		case <-ctx.Done():
			return true
		default:
			return false
		}
	}
	for _, k := range soakKinds {
		for w := range k.workers {
			wg.Go(func() {
				switch k.name {
				case "hit":
					soakHits(ctx, t, w, stopped, record)
				case "miss":
					soakPaced(ctx, stop, 20*time.Millisecond, func(i int) error {
						return soakGet(ctx, t.url(fmt.Sprintf("/bytes/1k?miss=%d", i)), "MISS", "X-Cachegate-Expire-After", "do_not_cache")
					}, func(err error) { record("miss", err) })
				case "admin":
					soakPaced(ctx, stop, 100*time.Millisecond, func(i int) error {
						if i%2 == 0 {
							return soakGet(ctx, t.base+"/api/entries?limit=50&sort=size", "")
						}
						return soakGet(ctx, t.base+"/api/stats", "")
					}, func(err error) { record("admin", err) })
				case "slow":
					for !stopped() {
						record("slow", slowClient(ctx, t, fmt.Sprintf("/bytes/1m?slow=%d", w)))
					}
				case "idle":
					for !stopped() {
						record("idle", idleClient(ctx, t))
					}
				}
			})
		}
	}

	// Sample every second until the soak's time is up.
	tick := time.NewTicker(time.Second)
	end := time.NewTimer(b.cfg.Soak)
sample:
	for {
		select {
		case <-ctx.Done():
			break sample
		case <-end.C:
			break sample
		case <-tick.C:
			if n, err := goroutines(ctx, dbg, debug); err == nil {
				res.peakG = max(res.peakG, n)
			}
			res.peakRSS = max(res.peakRSS, t.proc.rssKiB())
			if t.proc.exited() {
				res.gatewayExitedUnderLoad = fmt.Sprintf("%s exited (%s); its output ends:\n%s", t.name, exitText(t.proc.err), t.proc.logTail(15))
				break sample
			}
		}
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if res.gatewayExitedUnderLoad != "" {
		return res, errors.New(res.gatewayExitedUnderLoad)
	}
	res.upstreamCallsDuring = b.upstreamRequests(ctx) - upBefore - 1 // the first /_stats counts itself

	// The clients are gone: the gateway's goroutines must come back to
	// the baseline; poll, with a bound, rather than guess how long.
	loadEnd := time.Now()
	for {
		n, err := goroutines(ctx, dbg, debug)
		if err != nil {
			return res, err
		}
		res.endG = n
		if n <= res.baseG+res.slackG || time.Since(loadEnd) > res.settleLimit {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	res.settled = time.Since(loadEnd)
	collect(ctx, dbg, debug)
	res.endRSS = t.proc.rssKiB()
	if res.endMem, err = memStats(ctx, dbg, debug); err != nil {
		return res, err
	}
	res.rssLimitKiB = res.baseRSS + max(res.baseRSS/2, 16<<10)
	if res.endEntries, err = entriesIn(ctx, dbg, t.base); err != nil {
		return res, err
	}
	return res, nil
}

// entriesIn reads the number of entries the gateway's default backend
// holds from its admin API.
func entriesIn(ctx context.Context, client *http.Client, base string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/entries?limit=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var l listJSON
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || l.Total == nil {
		return 0, fmt.Errorf("GET /api/entries: %s, no totals (%v)", resp.Status, err)
	}
	return l.Total.Entries, nil
}

// soakHits fetches the hot URLs back to back on one keep-alive client.
func soakHits(ctx context.Context, t *target, w int, stopped func() bool, record func(string, error)) {
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	for i := w * 17; !stopped(); i++ {
		status, xc, _, err := fetch(ctx, client, t.url(fmt.Sprintf("/bytes/1k?soak=%d", i%soakHot)))
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err == nil && status != http.StatusOK:
			err = fmt.Errorf("status %d", status)
		case err == nil && xc != "HIT":
			err = fmt.Errorf("X-Cache %q, want HIT", xc)
		}
		record("hit", err)
	}
}

// soakPaced calls fn every interval until stop.
func soakPaced(ctx context.Context, stop <-chan struct{}, every time.Duration, fn func(i int) error, record func(error)) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		err := fn(i)
		if ctx.Err() != nil {
			return
		}
		record(err)
	}
}

// soakClient is shared by the paced kinds; net/http reuses its connections.
var soakClient = &http.Client{Timeout: 30 * time.Second}

// soakGet fetches url with the header given as name, value pairs and
// checks it answers 200 (and X-Cache wantCache when set).
func soakGet(ctx context.Context, url, wantCache string, header ...string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := soakClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	switch xc := resp.Header.Get("X-Cache"); {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	case wantCache != "" && xc != wantCache:
		return fmt.Errorf("%s: X-Cache %q, want %s", url, xc, wantCache)
	}
	return nil
}

// slowReader hands out at most 8 KiB per read, one read every 50 ms.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 8<<10)])
}

// slowClient writes a request a byte at a time and reads the answer slowly.
func slowClient(ctx context.Context, t *target, path string) error {
	c, done, err := dialRaw(ctx, t.base, 60*time.Second)
	if err != nil {
		return err
	}
	defer done()
	req := appendGet(nil, t.prefix+path, c.host)
	for i := range req {
		if _, err := c.conn.Write(req[i : i+1]); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	r, err := readResponse(bufio.NewReaderSize(slowReader{c.conn}, 8<<10))
	switch {
	case err != nil:
		return err
	case r.status != http.StatusOK || r.body != 1<<20:
		return fmt.Errorf("slow client: status %d, %d bytes", r.status, r.body)
	}
	return nil
}

// idleClient opens a connection, sends nothing, and waits for the server
// to close it.
func idleClient(ctx context.Context, t *target) error {
	c, done, err := dialRaw(ctx, t.base, 60*time.Second)
	if err != nil {
		return err
	}
	defer done()
	n, err := c.conn.Read(make([]byte, 1))
	switch {
	case n > 0:
		return errors.New("idle client: the server wrote to a connection that sent nothing")
	case errors.Is(err, io.EOF):
		return nil
	case ctx.Err() != nil:
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("idle client: the server kept a silent connection open for 60 s")
	}
	return err
}

// soakFigures runs the soak and renders its section of the report.
func (b *bench) soakFigures(ctx context.Context) section {
	sec := section{title: fmt.Sprintf("Soak: %s of mixed traffic", b.cfg.Soak)}
	if b.cfg.Soak <= 0 {
		sec.body = "_Skipped (`-soak 0`)._\n"
		return sec
	}
	res, err := b.soak(ctx)
	if err != nil {
		logf("soak: %v", err)
		sec.body = fmt.Sprintf("**Not completed**: %s\n", indent(err.Error()))
		sec.checks = []string{"FAIL soak: not completed: " + firstLine(err.Error(), err)}
		return sec
	}
	sec.body, sec.checks = res.markdown(), res.checks()
	return sec
}

func (r *soakResult) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("One gateway (bench/cmd/soakgw: web.Server as cmd/server serves it, on a fresh SQLite file, plus net/http/pprof on a second loopback listener for the goroutine count) in front of the upstream; every kind of traffic below at once, on 127.0.0.1. Goroutines and RSS are read before the load (after warming the URLs it asks for and a garbage collection that returns freed memory to the OS), every second during it, and after it, once the goroutines are back within %d of the baseline (polled every 250 ms, at most %s) and after another such collection.\n\n", r.slackG, r.settleLimit)
	w("| traffic | workers | what | requests | errors |\n|---|---:|---|---:|---:|\n")
	total, errs := 0, 0
	for _, k := range soakKinds {
		c := r.counts[k.name]
		if c == nil {
			c = &soakCount{}
		}
		total += c.requests
		errs += c.errors
		last := ""
		if c.lastErr != "" {
			last = " (last: " + c.lastErr + ")"
		}
		w("| %s | %d | %s | %d | %d%s |\n", k.name, k.workers, k.what, c.requests, c.errors, last)
	}
	w("| all | | | %d | %d |\n\n", total, errs)
	w("| | before | peak during | after |\n|---|---:|---:|---:|\n")
	w("| goroutines | %d | %d | %d (%.1f s after the load) |\n", r.baseG, r.peakG, r.endG, r.settled.Seconds())
	w("| RSS | %s | %s | %s |\n", mib(r.baseRSS), mib(r.peakRSS), mib(r.endRSS))
	for _, m := range []struct{ name, what string }{
		{"HeapInuse", "Go heap in use"},
		{"HeapIdle", "Go heap idle"},
		{"HeapReleased", "of it returned to the OS"},
		{"Sys", "all the Go runtime holds"},
	} {
		if b, ok := r.baseMem[m.name]; ok {
			w("| %s (`%s`) | %s | | %s |\n", m.what, m.name, mib(int(b>>10)), mib(int(r.endMem[m.name]>>10)))
		}
	}
	w("\n")
	w("Upstream requests during the soak: %d (the misses, and nothing else).\n", r.upstreamCallsDuring)
	return b.String()
}

func (r *soakResult) checks() []string {
	total, errs := 0, 0
	for _, c := range r.counts {
		total += c.requests
		errs += c.errors
	}
	return []string{
		fmt.Sprintf("%s soak: %d requests in %s, %d errors", verdict(errs == 0 && total > 0), total, r.duration, errs),
		fmt.Sprintf("%s soak: goroutines back to %d after the load (baseline %d, peak %d; within %d of the baseline)", verdict(r.endG <= r.baseG+r.slackG), r.endG, r.baseG, r.peakG, r.slackG),
		fmt.Sprintf("%s soak: %d entries stored after the load, %d before (its misses ask not to be stored)", verdict(r.endEntries == r.baseEntries), r.endEntries, r.baseEntries),
		fmt.Sprintf("%s soak: RSS %s after the load (baseline %s, peak %s; at most %s, the baseline plus half or 16 MiB)", verdict(r.endRSS <= r.rssLimitKiB), mib(r.endRSS), mib(r.baseRSS), mib(r.peakRSS), mib(r.rssLimitKiB)),
	}
}
