package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cachegate/cachegate/backends/sqlite"
)

// Targets of issue 5 checked here.
const (
	listTarget   = 50 * time.Millisecond
	countTarget  = 100 * time.Millisecond
	purgeTarget  = 5 * time.Second
	rssTarget    = 100 << 10 // KiB
	streamSize   = 200 << 20
	streamGrowth = 16 << 10 // KiB of RSS growth still called flat
)

// millionEntryFigures measures cachegate on SQLite with cfg.Entries entries
// (unless -no-million) and streams a 200 MiB response through the
// cachegate-sqlite target. It runs after everything else, with every server
// still up, and returns the report's section.
func (b *bench) millionEntryFigures(ctx context.Context) section {
	sec := section{title: "Million-entry and memory figures"}
	var body strings.Builder
	if b.gwBin == "" {
		sec.body = "_Not measured: the gateway did not build._\n"
		return sec
	}
	if b.cfg.NoMillion {
		body.WriteString("_Million-entry figures skipped (`-no-million`)._\n")
	} else {
		logf("million entries: %d entries in SQLite", b.cfg.Entries)
		m, err := b.million(ctx)
		if err != nil {
			logf("million entries: %v", err)
			fmt.Fprintf(&body, "**Not completed**: %s\n\n", indent(err.Error()))
			sec.checks = append(sec.checks, "FAIL million entries: not completed: "+firstLine(err.Error(), err))
		}
		if m != nil {
			body.WriteString(m.markdown(b.cfg))
			sec.checks = append(sec.checks, m.checks(b.cfg)...)
		}
	}
	if b.cfg.Only == "million" {
		// The stream goes through the peers' cachegate-sqlite, which only
		// the full run starts.
		body.WriteString("\n_The 200 MiB stream runs in the full run only._\n")
		sec.body = body.String()
		return sec
	}
	body.WriteString("\n### A 200 MiB response streamed through cachegate-sqlite\n\n")
	st, err := b.streamLarge(ctx)
	if err != nil {
		logf("stream: %v", err)
		fmt.Fprintf(&body, "**Not completed**: %s\n", indent(err.Error()))
		sec.checks = append(sec.checks, "FAIL 200 MiB stream: not completed: "+firstLine(err.Error(), err))
	} else {
		body.WriteString(st.markdown())
		sec.checks = append(sec.checks, st.checks()...)
	}
	sec.body = body.String()
	return sec
}

// millionResult is everything the million-entry run measured.
type millionResult struct {
	entries, hot          int
	plan                  fillPlan
	fill, warm            time.Duration
	loadStart, loadEnd    string
	direct, small, large  []wrkRun // hot URLs: upstream, 1,000 entries, cfg.Entries; per round
	rounds                int      // rounds of the hot-URL comparison (hotRounds)
	lists                 []listResult
	count, countExpired   timed
	totals, expiredTotals totalsJSON
	purge                 purgeResult
	pages                 *pagesResult
	rss                   map[string]int // phase -> max KiB
	rssPhases             []string
	notes                 []string
}

// timed is the median and slowest of a few identical requests.
type timed struct{ median, max time.Duration }

func (t timed) String() string {
	return fmt.Sprintf("%s (max %s)", fmtDur(t.median), fmtDur(t.max))
}

type listResult struct {
	query       string
	first, deep timed
	walk        time.Duration // pages 2..999
	deepFirst   string        // first entry of the deep page, for the reader to judge
	deepNext    string        // the cursor of the deep page
	firstKey    string        // the first page's first entry
}

type purgeResult struct {
	deleted         int64
	took            time.Duration
	before, during  latencies
	hitsNotHIT      int
	requestErrors   int
	firstRequestErr string
	purgeStatus     string
}

// latencies summarizes a Go client loop's requests over a window.
type latencies struct {
	n             int
	p50, p99, max time.Duration
}

type totalsJSON struct {
	Entries int64 `json:"entries"`
	Bytes   int64 `json:"bytes"`
}

// million fills an SQLite file, starts two gateways (one on that file, one
// on a file with only the hot URLs) and measures. Both gateways are stopped
// and their files deleted before it returns.
func (b *bench) million(ctx context.Context) (*millionResult, error) {
	cfg := b.cfg
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	m := &millionResult{entries: cfg.Entries, hot: hotCount, rss: map[string]int{}, loadStart: loadAvg()}
	defer func() { m.loadEnd = loadAvg() }()

	dir := filepath.Join(cfg.dir, "million")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	largeDB, smallDB := filepath.Join(dir, "large.db"), filepath.Join(dir, "small.db")

	// Fill: every entry but the hot ones, loaded into the file directly.
	logf("million entries: loading %d entries into %s", cfg.Entries-hotCount, largeDB)
	start := time.Now()
	be, err := sqlite.Open("sqlite://" + largeDB)
	if err != nil {
		return nil, err
	}
	seq, plan := fillEntries(cfg.Entries-hotCount, cfg.Entries/10, b.upstream.base, time.Now())
	gc := debug.SetGCPercent(400) // the fill allocates much that dies young
	_, err = be.Load(ctx, seq)
	debug.SetGCPercent(gc)
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("load: %w", err)
	}
	if err := be.Close(); err != nil {
		return nil, fmt.Errorf("load: close: %w", err)
	}
	m.fill, m.plan = time.Since(start), *plan
	logf("million entries: loaded in %s", m.fill.Round(time.Millisecond))

	large, err := b.extraGateway(ctx, "cachegate-sqlite-large", "sqlite://"+largeDB)
	if err != nil {
		return m, err
	}
	defer large.proc.stop()
	small, err := b.extraGateway(ctx, "cachegate-sqlite-small", "sqlite://"+smallDB)
	if err != nil {
		return m, err
	}
	defer small.proc.stop()

	rss := newRSSSampler(large.proc, 100*time.Millisecond)
	defer rss.stop()
	phase := func(name string) {
		rss.phase(name)
		m.rssPhases = append(m.rssPhases, name)
	}

	phase("storing the hot URLs")
	start = time.Now()
	for _, t := range []*target{small, large} {
		if err := warmHot(ctx, t); err != nil {
			return m, err
		}
	}
	m.warm = time.Since(start)

	phase("serving hits")
	if err := b.hotThroughput(ctx, small, large, m); err != nil {
		return m, err
	}

	phase("listing")
	for _, q := range []string{"sort=size&order=desc&limit=50", "sort=expires&limit=50"} {
		lr, err := walkList(ctx, large.base, q)
		if err != nil {
			return m, err
		}
		m.lists = append(m.lists, lr)
		logf("million entries: %s: first page %s, page %d %s", q, lr.first, listPages, lr.deep)
	}

	phase("browsing the admin pages")
	if m.pages, err = b.measurePages(ctx, large, m); err != nil {
		return m, err
	}

	phase("counting")
	if m.count, m.totals, err = timeTotals(ctx, large.base, "limit=1"); err != nil {
		return m, err
	}
	if m.countExpired, m.expiredTotals, err = timeTotals(ctx, large.base, "limit=1&freshness=expired"); err != nil {
		return m, err
	}

	phase("purging expired entries")
	if m.purge, err = purgeDuringHits(ctx, large); err != nil {
		return m, err
	}
	phase("after the purge")
	time.Sleep(300 * time.Millisecond)
	rss.stop()
	m.rss = rss.maxByPhase()
	if large.proc.exited() {
		return m, fmt.Errorf("%s exited (%s); its output ends:\n%s", large.name, exitText(large.proc.err), large.proc.logTail(15))
	}
	return m, nil
}

// extraGateway starts one more cachegate process on dsn.
func (b *bench) extraGateway(ctx context.Context, name, dsn string) (*target, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	t := &target{name: name, base: "http://127.0.0.1:" + strconv.Itoa(port), prefix: "/fetch/bench", health: "/healthz", cached: true}
	logf("starting %s on %s", name, t.base)
	// Not in b.targets: the report's tables are about the main run. b.start
	// adds it to b.procs, so it is stopped on every path.
	if err := b.start(ctx, t, false, b.gwBin, b.gatewayArgs(port, dsn)...); err != nil {
		return nil, err
	}
	return t, nil
}

// warmHot requests every hot URL through t until it is stored, eight at a
// time, then checks that each one answers X-Cache: HIT.
func warmHot(ctx context.Context, t *target) error {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	for pass := range 2 {
		var (
			mu       sync.Mutex
			firstErr error
			notHit   int
			wg       sync.WaitGroup
			next     = make(chan int)
		)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					status, xc, n, err := fetch(ctx, client, t.url(hotPath(i)))
					mu.Lock()
					switch {
					case err != nil && firstErr == nil:
						firstErr = err
					case err == nil && (status != http.StatusOK || n != hotBody) && firstErr == nil:
						firstErr = fmt.Errorf("%s: status %d, %d bytes", hotPath(i), status, n)
					case pass == 1 && !strings.HasPrefix(strings.ToUpper(xc), "HIT"):
						notHit++
					}
					mu.Unlock()
				}
			})
		}
		for i := range hotCount {
			if ctx.Err() != nil {
				break
			}
			next <- i
		}
		close(next)
		wg.Wait()
		if firstErr != nil {
			return fmt.Errorf("%s: storing the hot URLs: %w", t.name, firstErr)
		}
		if notHit > 0 {
			return fmt.Errorf("%s: %d of %d hot URLs not answered X-Cache: HIT on the second request", t.name, notHit, hotCount)
		}
	}
	return ctx.Err()
}

// hotLua makes wrk go round the hot URLs, each thread from its own offset.
const hotLua = `local n = 0
local paths = {}
for i = 0, %[1]d - 1 do paths[#paths + 1] = "%[2]s" .. "/bytes/1k?hot=" .. i end
setup = function(thread) thread:set("offset", math.random(0, %[1]d - 1)) end
request = function()
  n = n + 1
  return wrk.format("GET", paths[((n + (offset or 0)) %% #paths) + 1])
end
`

// minHotRounds is the fewest rounds of the hot-URL comparison outside
// -quick: its verdict compares two medians within 10%, closer than one
// round's req/s holds steady while the hypervisor steals CPU.
const minHotRounds = 5

// hotRounds is how many interleaved rounds the hot-URL comparison runs:
// cfg.Rounds, and at least minHotRounds unless -quick.
func hotRounds(cfg config) int {
	if cfg.Quick {
		return cfg.Rounds
	}
	return max(cfg.Rounds, minHotRounds)
}

// hotThroughput runs wrk over the hot URLs on the upstream directly (the
// Lua script costs wrk itself a share of its rate, so this is the reference
// to compare with), the small and the large gateway, in interleaved rounds
// (hotRounds). b.load records each run's server CPU time: the gateways
// were started by b.start, so pidOf finds their processes.
func (b *bench) hotThroughput(ctx context.Context, small, large *target, m *millionResult) error {
	scripts := map[string]string{}
	for _, prefix := range []string{"", small.prefix} {
		path := filepath.Join(b.cfg.dir, fmt.Sprintf("hot%d.lua", len(scripts)))
		if err := os.WriteFile(path, []byte(fmt.Sprintf(hotLua, hotCount, prefix)), 0o600); err != nil {
			return err
		}
		scripts[prefix] = path
	}
	m.rounds = hotRounds(b.cfg)
	for r := 1; r <= m.rounds; r++ {
		for _, t := range []*target{b.upstream, small, large} {
			ru, err := b.load(ctx, t, t.base+"/", "-s", scripts[t.prefix])
			if err != nil {
				return err
			}
			switch t {
			case b.upstream:
				m.direct = append(m.direct, ru)
			case small:
				m.small = append(m.small, ru)
			default:
				m.large = append(m.large, ru)
			}
			logRun(fmt.Sprintf("round %d %-22s hot URLs", r, t.name), ru)
		}
	}
	return nil
}

// listJSON is the part of GET /api/entries the runner reads.
type listJSON struct {
	Entries []struct {
		Key     string     `json:"key"`
		Size    int64      `json:"size"`
		Expires *time.Time `json:"expires"`
	} `json:"entries"`
	Next  string      `json:"next"`
	Total *totalsJSON `json:"total"`
}

func getList(ctx context.Context, client *http.Client, url string) (listJSON, time.Duration, error) {
	var l listJSON
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return l, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return l, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	took := time.Since(start)
	if err != nil {
		return l, took, err
	}
	if resp.StatusCode != http.StatusOK {
		return l, took, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return l, took, json.Unmarshal(body, &l)
}

// repeat times five identical requests after the first one checked.
func repeat(ctx context.Context, client *http.Client, url string) (timed, listJSON, error) {
	var ds []time.Duration
	var last listJSON
	for range 5 {
		l, d, err := getList(ctx, client, url)
		if err != nil {
			return timed{}, l, err
		}
		ds, last = append(ds, d), l
	}
	return timed{median: percentile(ds, 0.5), max: slices.Max(ds)}, last, nil
}

// walkList times the first page of GET /api/entries?query, follows next to
// page listPages (without the totals, as a client paging on would), and
// times that page with the same query as the first.
func walkList(ctx context.Context, base, query string) (listResult, error) {
	lr := listResult{query: query}
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	url := base + "/api/entries?" + query
	var first listJSON
	var err error
	if lr.first, first, err = repeat(ctx, client, url); err != nil {
		return lr, err
	}
	if len(first.Entries) != listPageSize || first.Total == nil {
		return lr, fmt.Errorf("GET %s: %d entries and total %v, want %d and the totals", url, len(first.Entries), first.Total, listPageSize)
	}
	lr.firstKey = first.Entries[0].Key
	next := first.Next
	start := time.Now()
	for page := 2; page < listPages; page++ {
		if next == "" {
			return lr, fmt.Errorf("GET %s: no next page after page %d", url, page-1)
		}
		l, _, err := getList(ctx, client, url+"&count=false&next="+next)
		if err != nil {
			return lr, fmt.Errorf("page %d: %w", page, err)
		}
		next = l.Next
	}
	lr.walk = time.Since(start)
	lr.deepNext = next
	deepURL := url + "&next=" + next
	deep, l, err := repeat(ctx, client, deepURL)
	if err != nil {
		return lr, fmt.Errorf("page %d: %w", listPages, err)
	}
	if len(l.Entries) != listPageSize {
		return lr, fmt.Errorf("page %d: %d entries, want %d", listPages, len(l.Entries), listPageSize)
	}
	lr.deep = deep
	e := l.Entries[0]
	lr.deepFirst = fmt.Sprintf("size %d B", e.Size)
	if strings.Contains(query, "expires") {
		lr.deepFirst = "expires never"
		if e.Expires != nil {
			lr.deepFirst = "expires " + e.Expires.UTC().Format(time.RFC3339)
		}
	}
	return lr, nil
}

// timeTotals times GET /api/entries?query five times and returns the totals.
func timeTotals(ctx context.Context, base, query string) (timed, totalsJSON, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	t, l, err := repeat(ctx, client, base+"/api/entries?"+query)
	if err != nil {
		return t, totalsJSON{}, err
	}
	if l.Total == nil {
		return t, totalsJSON{}, fmt.Errorf("GET /api/entries?%s: no totals", query)
	}
	return t, *l.Total, nil
}

// hitLoop requests the hot URLs from workers goroutines, one connection
// each, until stop is closed, recording when each request started and how
// long it took.
type hitLoop struct {
	mu      sync.Mutex // protects the fields below
	starts  []time.Time
	lats    []time.Duration
	notHIT  int
	errs    int
	lastErr string
}

func (h *hitLoop) run(ctx context.Context, t *target, workers int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			for i := w * 97; ; i++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				start := time.Now()
				status, xc, _, err := fetch(ctx, client, t.url(hotPath(i%hotCount)))
				d := time.Since(start)
				h.mu.Lock()
				h.starts, h.lats = append(h.starts, start), append(h.lats, d)
				switch {
				case err != nil:
					h.errs++
					h.lastErr = err.Error()
				case status != http.StatusOK:
					h.errs++
					h.lastErr = "status " + strconv.Itoa(status)
				case !strings.HasPrefix(strings.ToUpper(xc), "HIT"):
					h.notHIT++
				}
				h.mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// window summarizes the requests that started in [from, to).
func (h *hitLoop) window(from, to time.Time) latencies {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ds []time.Duration
	for i, s := range h.starts {
		if !s.Before(from) && s.Before(to) {
			ds = append(ds, h.lats[i])
		}
	}
	if len(ds) == 0 {
		return latencies{}
	}
	return latencies{n: len(ds), p50: percentile(ds, 0.5), p99: percentile(ds, 0.99), max: slices.Max(ds)}
}

// purgeDuringHits runs a hit loop for a few seconds, then purges the
// expired entries while it goes on, and compares the hits' latency before
// and during the purge.
func purgeDuringHits(ctx context.Context, t *target) (purgeResult, error) {
	var pr purgeResult
	const baseline = 3 * time.Second
	var h hitLoop
	stop := make(chan struct{})
	done := make(chan struct{})
	loopStart := time.Now()
	go func() {
		defer close(done)
		h.run(ctx, t, 8, stop)
	}()
	stopLoop := sync.OnceFunc(func() { close(stop); <-done })
	defer stopLoop()

	select {
	case <-time.After(baseline):
	case <-ctx.Done():
		return pr, ctx.Err()
	}
	client := &http.Client{Timeout: 5 * time.Minute}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/api/purge-expired", nil)
	if err != nil {
		return pr, err
	}
	logf("million entries: purging expired entries while hits go on")
	purgeStart := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return pr, fmt.Errorf("POST /api/purge-expired: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	purgeEnd := time.Now()
	stopLoop()
	pr.took = purgeEnd.Sub(purgeStart)
	pr.purgeStatus = resp.Status
	if resp.StatusCode != http.StatusOK {
		return pr, fmt.Errorf("POST /api/purge-expired: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Deleted int64 `json:"deleted"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return pr, fmt.Errorf("POST /api/purge-expired: %w: %s", err, body)
	}
	pr.deleted = out.Deleted
	// The first half second of the loop opens connections.
	pr.before = h.window(loopStart.Add(500*time.Millisecond), purgeStart)
	pr.during = h.window(purgeStart, purgeEnd)
	pr.hitsNotHIT, pr.requestErrors, pr.firstRequestErr = h.notHIT, h.errs, h.lastErr
	logf("million entries: purge deleted %d in %s; hit p99 %s before, %s during", pr.deleted, pr.took.Round(time.Millisecond), fmtDur(pr.before.p99), fmtDur(pr.during.p99))
	return pr, nil
}

// rssSampler reads a process's RSS at an interval and keeps the maximum per
// phase.
type rssSampler struct {
	mu   sync.Mutex // protects cur and max
	cur  string
	max  map[string]int
	quit chan struct{}
	done chan struct{}
	once sync.Once
}

func newRSSSampler(p *proc, every time.Duration) *rssSampler {
	s := &rssSampler{max: map[string]int{}, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			kib := p.rssKiB()
			s.mu.Lock()
			s.max[s.cur] = max(s.max[s.cur], kib)
			s.mu.Unlock()
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) phase(name string) {
	s.mu.Lock()
	s.cur = name
	s.mu.Unlock()
}

func (s *rssSampler) stop() {
	s.once.Do(func() { close(s.quit) })
	<-s.done
}

func (s *rssSampler) maxByPhase() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.max {
		out[k] = v
	}
	return out
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func mib(kib int) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func (m *millionResult) markdown(cfg config) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("cachegate on SQLite with **%d entries** of the upstream \"bench\": %d loaded into the file beforehand with `sqlite.Backend.Load` in %s (%s of bodies, %d expired, %d never expiring, sizes 32 B..%d B), then %d hot URLs (`/bytes/1k?hot=N`, 1 KiB) stored by the gateway itself in %s. ",
		m.entries, m.plan.count, m.fill.Round(time.Millisecond), mib(int(m.plan.bytes>>10)), m.plan.expired, m.plan.never, m.plan.maxSize, m.hot, m.warm.Round(time.Millisecond))
	w("The comparison gateway has only the %d hot URLs. Both run with the same flags as cachegate-sqlite above (default hot tier). Load average (1, 5, 15 min) at the start of this part: %s; at its end: %s.\n\n", m.hot, m.loadStart, m.loadEnd)

	if len(m.direct) > 0 && len(m.small) > 0 && len(m.large) > 0 {
		roundsNote := ""
		if m.rounds > cfg.Rounds {
			roundsNote = fmt.Sprintf(" (at least %d here outside `-quick`, against %d for the throughput table, as the verdict compares two medians within 10%%)", minHotRounds, cfg.Rounds)
		}
		w("**Hits on the %d hot URLs** (wrk as above with a Lua script going round the URLs, which costs wrk itself a share of its rate, hence the upstream called with the same script as the reference; %d round(s) of %s%s, the three interleaved; server CPU per request measured as in the throughput table, median over rounds):\n\n", m.hot, m.rounds, cfg.Duration, roundsNote)
		w("| target | req/s | p99 | × upstream | server CPU/req | rounds (req/s) | rounds (CPU µs/req) | notes |\n|---|---:|---:|---:|---:|---|---|---|\n")
		up := summarize(m.direct)
		for _, r := range []struct {
			name string
			runs []wrkRun
		}{{"upstream (direct)", m.direct}, {fmt.Sprintf("cachegate-sqlite, %d entries", m.hot), m.small}, {fmt.Sprintf("cachegate-sqlite, %d entries", m.entries), m.large}} {
			s := summarize(r.runs)
			var rounds, cpuRounds, notes []string
			for _, v := range s.perRound {
				rounds = append(rounds, fmtRPS(v))
			}
			for _, v := range s.cpuRounds {
				if v < 0 {
					cpuRounds = append(cpuRounds, "?")
				} else {
					cpuRounds = append(cpuRounds, fmt.Sprintf("%.1f", v))
				}
			}
			if s.non2xx > 0 {
				notes = append(notes, fmt.Sprintf("%d non-2xx", s.non2xx))
			}
			if s.sockErrs > 0 {
				notes = append(notes, fmt.Sprintf("%d socket errors", s.sockErrs))
			}
			if s.upstreams > 0 && r.name != "upstream (direct)" {
				notes = append(notes, fmt.Sprintf("%d upstream requests (misses)", s.upstreams))
			}
			w("| %s | %s | %s | %.2f | %s | %s | %s | %s |\n", r.name, fmtRPS(s.rps), fmtDur(s.p99), s.rps/up.rps, fmtCPU(s.cpu, s.cpuOK),
				strings.Join(rounds, " "), strings.Join(cpuRounds, " "), strings.Join(notes, "; "))
		}
		sm, lg := summarize(m.small), summarize(m.large)
		w("\nRatio %d entries ÷ %d entries: %.2f× the req/s, p99 %s against %s.\n\n", m.entries, m.hot, lg.rps/sm.rps, fmtDur(lg.p99), fmtDur(sm.p99))
	}

	if len(m.lists) > 0 {
		w("**Listing** `GET /api/entries` on the %d-entry cache (median of 5 identical requests, slowest in brackets; each answer includes the totals). Page %d is reached by following `next` %d times (with `count=false`):\n\n", m.entries, listPages, listPages-1)
		w("| query | first page | page %d | walk to it | page %d starts at |\n|---|---:|---:|---:|---|\n", listPages, listPages)
		for _, l := range m.lists {
			w("| `%s` | %s | %s | %s | %s |\n", l.query, l.first, l.deep, m2s(l.walk), l.deepFirst)
		}
		w("\n")
	}
	if m.pages != nil {
		w("%s", m.pages.markdown(m.entries))
	}
	if m.totals.Entries > 0 {
		w("**Count and total size**: `GET /api/entries?limit=1` answers %d entries, %s, in %s. With a filter (`freshness=expired`, which counts rows instead of reading the running totals): %d entries, %s, in %s.\n\n",
			m.totals.Entries, mib(int(m.totals.Bytes>>10)), m.count, m.expiredTotals.Entries, mib(int(m.expiredTotals.Bytes>>10)), m.countExpired)
	}
	if p := m.purge; p.took > 0 {
		w("**Purge**: `POST /api/purge-expired` deleted %d entries in %s, while 8 Go clients (one connection each) requested the hot URLs in a loop:\n\n", p.deleted, m2s(p.took))
		w("| hits | requests | p50 | p99 | max |\n|---|---:|---:|---:|---:|\n")
		w("| before the purge (2.5 s) | %d | %s | %s | %s |\n", p.before.n, fmtDur(p.before.p50), fmtDur(p.before.p99), fmtDur(p.before.max))
		w("| during the purge | %d | %s | %s | %s |\n", p.during.n, fmtDur(p.during.p50), fmtDur(p.during.p99), fmtDur(p.during.max))
		if p.requestErrors > 0 || p.hitsNotHIT > 0 {
			w("\n%d failed requests (%s), %d answers without X-Cache: HIT.\n", p.requestErrors, p.firstRequestErr, p.hitsNotHIT)
		}
		w("\n")
	}
	if len(m.rss) > 0 {
		w("**Resident memory** of the %d-entry gateway (VmRSS, sampled every 100 ms), highest per phase:\n\n| phase | max RSS |\n|---|---:|\n", m.entries)
		for _, ph := range m.rssPhases {
			if kib, ok := m.rss[ph]; ok {
				w("| %s | %s |\n", ph, mib(kib))
			}
		}
		w("\n")
	}
	for _, n := range m.notes {
		w("- %s\n", n)
	}
	return b.String()
}

// m2s formats a longer duration.
func m2s(d time.Duration) string {
	if d < time.Second {
		return fmtDur(d)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func (m *millionResult) checks(cfg config) []string {
	var out []string
	n := m.entries
	if len(m.small) > 0 && len(m.large) > 0 {
		sm, lg := summarize(m.small), summarize(m.large)
		// "As fast": within the run-to-run noise of this machine, taken as 10%.
		ok := lg.rps >= 0.9*sm.rps && float64(lg.p99) <= 1.1*float64(sm.p99)
		out = append(out, fmt.Sprintf("%s hit at %d entries: %s req/s, p99 %s against %s req/s, p99 %s at %d (%.2f×; target: as fast, taken as within 10%%)",
			verdict(ok), n, fmtRPS(lg.rps), fmtDur(lg.p99), fmtRPS(sm.rps), fmtDur(sm.p99), m.hot, lg.rps/sm.rps))
		out = append(out, m.hitCPULine(sm, lg))
	}
	for _, l := range m.lists {
		ok := l.first.median < listTarget && l.deep.median < listTarget
		out = append(out, fmt.Sprintf("%s `/api/entries?%s` at %d entries: first page %s, page %d %s (target under %s)",
			verdict(ok), l.query, n, fmtDur(l.first.median), listPages, fmtDur(l.deep.median), fmtDur(listTarget)))
	}
	if m.pages != nil {
		out = append(out, m.pages.checks(n)...)
	}
	if m.totals.Entries > 0 {
		want := int64(m.plan.count + m.hot)
		wantBytes := m.plan.bytes + int64(m.hot*hotBody)
		ok := m.count.median < countTarget && m.totals.Entries == want && m.totals.Bytes == wantBytes
		out = append(out, fmt.Sprintf("%s count and total size at %d entries: %s (%d entries, %d bytes; expected %d, %d; target under %s)",
			verdict(ok), n, fmtDur(m.count.median), m.totals.Entries, m.totals.Bytes, want, wantBytes, fmtDur(countTarget)))
	}
	if p := m.purge; p.took > 0 {
		ok := p.took < purgeTarget && p.deleted == int64(m.plan.expired) && p.requestErrors == 0
		out = append(out, fmt.Sprintf("%s purge of %d expired entries (%d expected): %s (target under %s); hit p99 %s during it against %s before (max %s), %d failed requests",
			verdict(ok), p.deleted, m.plan.expired, m2s(p.took), m2s(purgeTarget), fmtDur(p.during.p99), fmtDur(p.before.p99), fmtDur(p.during.max), p.requestErrors))
	}
	if kib, ok := m.rss["serving hits"]; ok {
		peak := 0
		for _, v := range m.rss {
			peak = max(peak, v)
		}
		out = append(out, fmt.Sprintf("%s RSS while serving hits from %d entries: %s (target under %s; highest over the whole run %s)",
			verdict(kib < rssTarget), n, mib(kib), mib(rssTarget), mib(peak)))
	}
	return out
}

// hitCPULine is the INFO line comparing the server CPU per request of the
// gateway holding m.entries with the one holding only the hot URLs. It
// judges nothing.
func (m *millionResult) hitCPULine(sm, lg summary) string {
	const what = "server CPU per request (not a target of issue 5; steady when CPU is stolen)"
	if !sm.cpuOK || !lg.cpuOK || sm.cpu <= 0 {
		return fmt.Sprintf("INFO hit at %d entries, %s: not measured (%s at %d entries, %s at %d)",
			m.entries, what, fmtCPU(lg.cpu, lg.cpuOK), m.entries, fmtCPU(sm.cpu, sm.cpuOK), m.hot)
	}
	return fmt.Sprintf("INFO hit at %d entries, %s: %s against %s at %d entries, %.2f× (median of %d round(s))",
		m.entries, what, fmtCPU(lg.cpu, true), fmtCPU(sm.cpu, true), m.hot, lg.cpu/sm.cpu, max(len(m.small), len(m.large)))
}

// streamResult is the 200 MiB streaming test's outcome.
type streamResult struct {
	target   string
	rssIdle  int
	requests []streamRun
}

type streamRun struct {
	xcache  string
	status  int
	bytes   int64
	took    time.Duration
	rssPeak int
}

// streamLarge downloads a 200 MiB body through cachegate-sqlite twice (the
// second time it may be a hit), sampling the gateway's RSS every 20 ms.
func (b *bench) streamLarge(ctx context.Context) (*streamResult, error) {
	var t *target
	for _, x := range b.live() {
		if x.name == gwSQLite {
			t = x
		}
	}
	if t == nil {
		return nil, errors.New("cachegate-sqlite is not running")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	st := &streamResult{target: t.name}
	for range 5 {
		st.rssIdle = max(st.rssIdle, t.proc.rssKiB())
		time.Sleep(50 * time.Millisecond)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()
	url := t.url("/bytes/" + strconv.Itoa(streamSize>>20) + "m?stream=" + strconv.FormatInt(time.Now().UnixNano(), 36))
	for range 2 {
		rss := newRSSSampler(t.proc, 20*time.Millisecond)
		start := time.Now()
		status, xc, n, err := fetch(ctx, client, url)
		took := time.Since(start)
		rss.stop()
		if err != nil {
			return st, fmt.Errorf("GET %s: %w (after %d bytes)", url, err, n)
		}
		st.requests = append(st.requests, streamRun{xcache: xc, status: status, bytes: int64(n), took: took, rssPeak: rss.maxByPhase()[""]})
		logf("stream: %d bytes in %s, X-Cache %q, peak RSS %s (idle %s)", n, took.Round(time.Millisecond), xc, mib(rss.maxByPhase()[""]), mib(st.rssIdle))
	}
	return st, nil
}

func (s *streamResult) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "`GET /fetch/bench/bytes/200m` (%d bytes, above the default max_body_size of 64 MiB, so it is passed through, not stored) twice through %s, RSS sampled every 20 ms. RSS before: %s.\n\n", streamSize, s.target, mib(s.rssIdle))
	b.WriteString("| request | status | X-Cache | bytes received | time | MiB/s | peak RSS | growth |\n|---|---:|---|---:|---:|---:|---:|---:|\n")
	for i, r := range s.requests {
		fmt.Fprintf(&b, "| %d | %d | %s | %d | %s | %.0f | %s | %s |\n", i+1, r.status, r.xcache, r.bytes, m2s(r.took),
			float64(r.bytes)/(1<<20)/r.took.Seconds(), mib(r.rssPeak), mib(r.rssPeak-s.rssIdle))
	}
	return b.String()
}

func (s *streamResult) checks() []string {
	ok := len(s.requests) > 0
	peak := 0
	for _, r := range s.requests {
		ok = ok && r.status == http.StatusOK && r.bytes == streamSize && r.rssPeak-s.rssIdle < streamGrowth
		peak = max(peak, r.rssPeak)
	}
	return []string{fmt.Sprintf("%s 200 MiB response streamed whole with flat memory: peak RSS %s against %s before (growth %s; target: whole, growth under %s)",
		verdict(ok), mib(peak), mib(s.rssIdle), mib(peak-s.rssIdle), mib(streamGrowth))}
}
