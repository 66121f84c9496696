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

// herdResult is the herd test's outcome for one cache.
type herdResult struct {
	target        string
	calls         int // upstream calls for the herd's URL
	p50, p99, max time.Duration
	errors        int    // failed requests or non-200 answers
	firstErr      string // one of them, for the report
}

// directLatency measures the upstream's own latency for /slow?ms=d: the median
// of five calls on a warm connection.
func (b *bench) directLatency(ctx context.Context, id string) (time.Duration, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	if _, _, _, err := fetch(ctx, client, b.upstream.base+"/healthz"); err != nil {
		return 0, err
	}
	var lat []time.Duration
	for i := range 5 {
		u := fmt.Sprintf("%s/slow?ms=%d&id=%s-direct-%d", b.upstream.base, b.cfg.HerdDelay.Milliseconds(), id, i)
		start := time.Now()
		if _, _, _, err := fetch(ctx, client, u); err != nil {
			return 0, err
		}
		lat = append(lat, time.Since(start))
	}
	return percentile(lat, 0.5), nil
}

// herdAll runs the herd test against every cache, one after the other
// (hits-only variants left out).
func (b *bench) herdAll(ctx context.Context) (herdReport, error) {
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	var hr herdReport
	var err error
	if hr.upstreamLatency, err = b.directLatency(ctx, runID); err != nil {
		return hr, fmt.Errorf("herd: direct upstream latency: %w", err)
	}
	for _, t := range b.liveFull() {
		if !t.cached {
			continue
		}
		res, err := b.herd(ctx, t, runID)
		if err != nil {
			return hr, err
		}
		logf("herd %-17s upstream calls %d  p99 %v  max %v", t.name, res.calls, res.p99.Round(time.Millisecond), res.max.Round(time.Millisecond))
		hr.results = append(hr.results, res)
	}
	return hr, nil
}

// herd sends cfg.Herd simultaneous requests for one URL nobody asked for yet.
// Each client has its own connection, opened beforehand with a request to the
// target's health path, so the herd itself measures only the cache's wait.
func (b *bench) herd(ctx context.Context, t *target, runID string) (herdResult, error) {
	id := "herd-" + t.name + "-" + runID
	u := t.url(fmt.Sprintf("/slow?ms=%d&id=%s", b.cfg.HerdDelay.Milliseconds(), id))
	n := b.cfg.Herd

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		lat         = make([]time.Duration, n)
		errs        = make([]string, n)
	)
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			_, _, _, err := fetch(ctx, client, t.base+t.health)
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
			status, _, _, err := fetch(ctx, client, u)
			lat[i] = time.Since(began)
			switch {
			case err != nil:
				errs[i] = err.Error()
			case status != http.StatusOK:
				errs[i] = "status " + strconv.Itoa(status)
			}
		}()
	}
	ready.Wait()
	time.Sleep(20 * time.Millisecond) // let every goroutine reach the barrier
	close(start)
	done.Wait()

	res := herdResult{target: t.name}
	var ok []time.Duration
	for i := range n {
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
