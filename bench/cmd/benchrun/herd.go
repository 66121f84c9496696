package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// herdResult is the outcome of one herd against one cache.
type herdResult struct {
	target        string
	herd          int // 1-based, in the order the herds ran
	calls         int // upstream calls for the herd's URL
	p50, p99, max time.Duration
	errors        int    // failed requests or non-200 answers
	firstErr      string // one of them, for the report
	chunked       int    // answers that came chunked (progress only)
}

// herdSeries is every herd run against one cache, in order.
type herdSeries struct {
	target string
	herds  []herdResult
}

// herdStats summarizes a cache's herds: the median and the worst over the
// herds that have a figure (some request succeeded).
type herdStats struct {
	n          int // herds run
	calls      []int
	callsOK    bool // exactly one upstream call in every herd
	errors     int
	firstErr   string
	p50, p99   time.Duration // median of the herds' p50 and p99
	medianMax  time.Duration // the slowest client of the median herd
	worstMax   time.Duration // the slowest client of the worst herd
	perHerdMax []time.Duration
	upstream   time.Duration // the upstream's own latency
	// medianRat and worstRat are medianMax and worstMax ÷ upstream; ratioOK
	// says whether they are known.
	medianRat, worstRat float64
	ratioOK             bool
}

// stats summarizes s against the upstream's own latency.
func (s herdSeries) stats(upstream time.Duration) herdStats {
	st := herdStats{n: len(s.herds), callsOK: len(s.herds) > 0, upstream: upstream}
	var p50, p99, mx []time.Duration
	for _, h := range s.herds {
		st.calls = append(st.calls, h.calls)
		st.callsOK = st.callsOK && h.calls == 1
		st.errors += h.errors
		if st.firstErr == "" {
			st.firstErr = h.firstErr
		}
		st.perHerdMax = append(st.perHerdMax, h.max)
		if h.max > 0 {
			p50, p99, mx = append(p50, h.p50), append(p99, h.p99), append(mx, h.max)
		}
	}
	if len(mx) > 0 {
		st.p50, st.p99, st.medianMax, st.worstMax = medianDur(p50), medianDur(p99), medianDur(mx), slices.Max(mx)
		if upstream > 0 {
			st.medianRat = float64(st.medianMax) / float64(upstream)
			st.worstRat = float64(st.worstMax) / float64(upstream)
			st.ratioOK = true
		}
	}
	return st
}

// herdRatioTarget is issue 5's bound on the slowest client of a herd:
// within 10% of the upstream's own latency.
const herdRatioTarget = 1.10

// pass is issue 5's herd target: every herd made exactly one upstream
// call and had no failed request, and the median herd's slowest client is
// within 10% of the upstream's own latency.
func (st herdStats) pass() bool {
	return st.callsOK && st.errors == 0 && st.ratioOK && st.medianRat <= herdRatioTarget
}

// checkLine is the herd's line among the issue 5 targets.
func (st herdStats) checkLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s herd (median of %d herds): ", verdict(st.pass()), st.n)
	if st.callsOK {
		fmt.Fprintf(&b, "1 upstream call in every herd")
	} else {
		fmt.Fprintf(&b, "upstream calls per herd %s", joinInts(st.calls))
	}
	if st.ratioOK {
		fmt.Fprintf(&b, ", slowest client %s in the median herd against %s upstream latency (%.2f×); worst herd %s (%.2f×)",
			fmtDur(st.medianMax), fmtDur(st.upstream), st.medianRat, fmtDur(st.worstMax), st.worstRat)
	} else {
		fmt.Fprintf(&b, ", slowest client not measured (upstream latency %s)", fmtDur(st.upstream))
	}
	if st.errors > 0 {
		fmt.Fprintf(&b, "; %d failed requests (%s)", st.errors, st.firstErr)
	}
	b.WriteString(" (target: 1 call in every herd, the median herd's slowest client within 10%)")
	return b.String()
}

// tableRow is the cache's row in the report's herd table.
func (st herdStats) tableRow(target string) string {
	maxes := make([]string, len(st.perHerdMax))
	for i, d := range st.perHerdMax {
		maxes[i] = "–"
		if d > 0 {
			maxes[i] = fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
		}
	}
	medRat, worstRat := "–", "–"
	if st.ratioOK {
		medRat, worstRat = fmt.Sprintf("%.2f", st.medianRat), fmt.Sprintf("%.2f", st.worstRat)
	}
	errs := "0"
	if st.errors > 0 {
		errs = fmt.Sprintf("%d (%s)", st.errors, st.firstErr)
	}
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |", target, st.n, joinInts(st.calls),
		fmtDur(st.p50), fmtDur(st.p99), fmtDur(st.medianMax), fmtDur(st.worstMax), medRat, worstRat, strings.Join(maxes, " "), errs)
}

// joinInts formats xs separated by spaces.
func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, " ")
}

// medianDur is the median of ds (the mean of the middle two for an even
// count), 0 for none. It does not reorder ds.
func medianDur(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return s[m-1] + (s[m]-s[m-1])/2
}

// herdRequestTimeout bounds every read and write of a herd client.
const herdRequestTimeout = 30 * time.Second

// directLatency measures the upstream's own latency for /slow?ms=d: the median
// of five calls on a warm connection, with the same lean client as the herds.
func (b *bench) directLatency(ctx context.Context, id string) (time.Duration, error) {
	c, closeConn, err := dialRaw(ctx, b.upstream.base, herdRequestTimeout)
	if err != nil {
		return 0, err
	}
	defer closeConn()
	if _, err := rawGetOK(c, b.upstream.health); err != nil {
		return 0, err
	}
	var lat []time.Duration
	for i := range 5 {
		path := fmt.Sprintf("/slow?ms=%d&id=%s-direct-%d", b.cfg.HerdDelay.Milliseconds(), id, i)
		start := time.Now()
		if _, err := rawGetOK(c, path); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(start))
	}
	return percentile(lat, 0.5), nil
}

// rawGetOK gets path on c and wants a 200 answer.
func rawGetOK(c *rawConn, path string) (rawResponse, error) {
	r, err := c.get(path)
	if err == nil && r.status != 200 {
		err = fmt.Errorf("GET %s: status %d", path, r.status)
	}
	return r, err
}

// herdAll runs cfg.Herds herds against every cache (hits-only variants left
// out), interleaved: the first herd against every cache in turn, then the
// second, and so on, so that drift in the CPU the hypervisor steals hits
// them all alike. Every herd asks for its own URL.
func (b *bench) herdAll(ctx context.Context) (herdReport, error) {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	hr := herdReport{herds: b.cfg.Herds}
	var err error
	if hr.upstreamLatency, err = b.directLatency(ctx, runID); err != nil {
		return hr, fmt.Errorf("herd: direct upstream latency: %w", err)
	}
	var caches []*target
	for _, t := range b.liveFull() {
		if t.cached {
			caches = append(caches, t)
			hr.results = append(hr.results, herdSeries{target: t.name})
		}
	}
	for h := 1; h <= b.cfg.Herds; h++ {
		for i, t := range caches {
			res, err := b.herd(ctx, t, runID, h)
			if err != nil {
				return hr, err
			}
			ratio := "?"
			if hr.upstreamLatency > 0 {
				ratio = fmt.Sprintf("%.2f×", float64(res.max)/float64(hr.upstreamLatency))
			}
			logf("herd %d/%d %-17s upstream calls %d  p50 %v  p99 %v  max %v (%s)  errors %d  chunked %d",
				h, b.cfg.Herds, t.name, res.calls, res.p50.Round(100*time.Microsecond), res.p99.Round(100*time.Microsecond),
				res.max.Round(100*time.Microsecond), ratio, res.errors, res.chunked)
			hr.results[i].herds = append(hr.results[i].herds, res)
		}
	}
	return hr, nil
}

// herd sends cfg.Herd simultaneous requests for one URL nobody asked for yet.
// Each client has its own TCP connection, opened beforehand and warmed with
// a request to the target's health path, so the herd itself measures only
// the cache's wait. The clients are lean (rawConn), so their own CPU time
// adds little to what is measured.
func (b *bench) herd(ctx context.Context, t *target, runID string, n int) (herdResult, error) {
	id := fmt.Sprintf("herd-%s-%s-%d", t.name, runID, n)
	path := t.prefix + fmt.Sprintf("/slow?ms=%d&id=%s", b.cfg.HerdDelay.Milliseconds(), id)
	clients := b.cfg.Herd

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		lat         = make([]time.Duration, clients)
		errs        = make([]string, clients)
		chunked     = make([]bool, clients)
	)
	for i := range clients {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			c, closeConn, err := dialRaw(ctx, t.base, herdRequestTimeout)
			if err == nil {
				defer closeConn()
				var r rawResponse
				if r, err = rawGetOK(c, t.health); err == nil && r.close {
					err = fmt.Errorf("GET %s: the server closes the connection", t.health)
				}
			}
			ready.Done()
			if err != nil {
				errs[i] = "warm-up: " + err.Error()
				return
			}
			select {
			case <-start:
			case <-ctx.Done():
				errs[i] = ctx.Err().Error()
				return
			}
			began := time.Now()
			r, err := c.get(path)
			lat[i] = time.Since(began)
			chunked[i] = r.chunked
			switch {
			case err != nil:
				errs[i] = err.Error()
			case r.status != 200:
				errs[i] = "status " + strconv.Itoa(r.status)
			}
		}()
	}
	ready.Wait()
	time.Sleep(20 * time.Millisecond) // let every goroutine reach the barrier
	close(start)
	done.Wait()

	res := herdResult{target: t.name, herd: n}
	var ok []time.Duration
	for i := range clients {
		if chunked[i] {
			res.chunked++
		}
		if errs[i] != "" {
			res.errors++
			if res.firstErr == "" {
				res.firstErr = errs[i]
			}
			continue
		}
		ok = append(ok, lat[i])
	}
	if len(ok) > 0 {
		res.p50, res.p99, res.max = percentile(ok, 0.5), percentile(ok, 0.99), slices.Max(ok)
	}
	calls, err := b.slowCalls(ctx, id)
	if err != nil {
		return res, fmt.Errorf("herd %s: reading upstream calls: %w", t.name, err)
	}
	res.calls = calls
	return res, nil
}

func (b *bench) slowCalls(ctx context.Context, id string) (int, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.upstream.base+"/_calls?id="+id, nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(body)))
}

// missResult is the miss-overhead test's outcome for one target.
type missResult struct {
	target   string
	p50, p90 time.Duration
	errors   int
}

// missOverhead times requests for URLs no cache has seen, one at a time on a
// warm connection per target, taking the targets in turn for each sample so
// that drift hits them equally.
func (b *bench) missOverhead(ctx context.Context) ([]missResult, error) {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	targets := b.liveFull()
	clients := make([]*http.Client, len(targets))
	lat := make([][]time.Duration, len(targets))
	res := make([]missResult, len(targets))
	for i, t := range targets {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr, Timeout: 10 * time.Second}
		if _, _, _, err := fetch(ctx, clients[i], t.base+t.health); err != nil {
			return nil, fmt.Errorf("miss: %s: %w", t.name, err)
		}
		res[i].target = t.name
	}
	for s := range b.cfg.MissSamples {
		for i, t := range targets {
			u := t.url(fmt.Sprintf("/bytes/1k?miss=%s-%d", runID, s))
			began := time.Now()
			status, _, _, err := fetch(ctx, clients[i], u)
			d := time.Since(began)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil || status != http.StatusOK {
				res[i].errors++
				continue
			}
			lat[i] = append(lat[i], d)
		}
	}
	for i := range targets {
		if len(lat[i]) > 0 {
			res[i].p50, res[i].p90 = percentile(lat[i], 0.5), percentile(lat[i], 0.9)
		}
	}
	return res, nil
}

// percentile returns the p-th quantile (nearest rank) of ds, which it sorts.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(p*float64(len(ds))+0.999999) - 1
	return ds[max(0, min(i, len(ds)-1))]
}
