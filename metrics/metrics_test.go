package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/metrics"
)

type env struct {
	gw      *gateway.Gateway
	metrics http.Handler
	release chan struct{} // closed: the upstream's /held answers
	arrived chan struct{} // a request for /held reached the upstream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{release: make(chan struct{}), arrived: make(chan struct{}, 16)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			e.arrived <- struct{}{}
			<-e.release
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, "hello from "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	b := memory.New(0)
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{
		Name: "bin", URL: u, Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)),
		Backend: b, BackendName: "default", Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	e.gw = gw
	e.metrics = metrics.Handler(metrics.Options{Gateway: gw, Backends: map[string]cache.Backend{"default": b}})
	return e
}

func (e *env) fetch(t *testing.T, target, want string) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/bin"+target, nil))
	if got := rec.Header().Get("X-Cache"); got != want {
		t.Fatalf("GET %s: X-Cache %q, want %q", target, got, want)
	}
}

// scrape reads /metrics and parses it as Prometheus would.
func (e *env) scrape(t *testing.T) (string, map[string]float64) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.metrics.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	body, _ := io.ReadAll(rec.Body)
	var p expfmt.TextParser
	families, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the text format: %v", err)
	}
	values := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.GetCounter() != nil:
				values[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				values[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				values[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
				for _, b := range m.GetHistogram().GetBucket() {
					values[fmt.Sprintf("%s_le_%g", key, b.GetUpperBound())] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return string(body), values
}

// A miss and two hits are counted by outcome, their answer times in the
// histograms, the stored entry in the backend's gauges; no URL appears.
func TestMetricsCountWhatTheGatewayAnswered(t *testing.T) {
	e := newEnv(t)
	e.fetch(t, "/secret-path?token=s3cret", "MISS")
	e.fetch(t, "/secret-path?token=s3cret", "HIT")
	e.fetch(t, "/secret-path?token=s3cret", "HIT")
	body, v := e.scrape(t)
	for key, want := range map[string]float64{
		`cachegate_requests_total{method=GET,outcome=hit,upstream=bin}`:        2,
		`cachegate_requests_total{method=GET,outcome=miss,upstream=bin}`:       1,
		`cachegate_requests_total{method=GET,outcome=coalesced,upstream=bin}`:  0,
		`cachegate_requests_total{method=GET,outcome=error,upstream=bin}`:      0,
		`cachegate_response_duration_seconds{outcome=hit,upstream=bin}_count`:  2,
		`cachegate_response_duration_seconds{outcome=miss,upstream=bin}_count`: 1,
		`cachegate_upstream_requests_total{upstream=bin}`:                      1,
		`cachegate_backend_entries{backend=default}`:                           1,
		`cachegate_backend_up{backend=default}`:                                1,
		`cachegate_inflight_upstream_calls{}`:                                  0,
	} {
		if got, ok := v[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if v[`cachegate_response_bytes_total{source=cache,upstream=bin}`] <= 0 {
		t.Error("two hits served no bytes from the cache")
	}
	// Every hit took under 8 s; the buckets are cumulative.
	if got := v[`cachegate_response_duration_seconds{outcome=hit,upstream=bin}_le_8.388608`]; got != 2 {
		t.Errorf("hits under 8.4 s: %v, want 2", got)
	}
	if _, ok := v[`go_goroutines{}`]; !ok {
		t.Error("no Go runtime series")
	}
	for _, secret := range []string{"secret-path", "s3cret", "token"} {
		if strings.Contains(body, secret) {
			t.Errorf("/metrics holds %q", secret)
		}
	}
}

// Requests that wait for another's upstream call count as coalesced, the
// caller's as a miss: the outcomes add up to the requests.
func TestMetricsCoalescedRequestsAreNotMissesTwice(t *testing.T) {
	e := newEnv(t)
	const n = 5
	var wg sync.WaitGroup
	defer wg.Wait()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := httptest.NewRecorder()
			e.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/bin/held", nil))
		}()
	}
	// The one call is under way; the others arrive and wait for it (or,
	// arriving after it ends, hit: the outcomes add up either way).
	<-e.arrived
	for e.gw.Stats().Snapshot().Total.Requests < n {
		runtime.Gosched()
	}
	_, during := e.scrape(t)
	if got := during[`cachegate_inflight_upstream_calls{}`]; got != 1 {
		t.Errorf("in-flight calls %v, want 1", got)
	}
	close(e.release)
	wg.Wait()
	_, v := e.scrape(t)
	var sum float64
	for _, o := range gateway.Outcomes {
		sum += v[`cachegate_requests_total{method=GET,outcome=`+o+`,upstream=bin}`]
	}
	if sum != n {
		t.Errorf("outcomes add up to %v, want the %d requests: %v", sum, n, v)
	}
	t.Logf("coalesced %v, miss %v, hit %v", v[`cachegate_requests_total{method=GET,outcome=coalesced,upstream=bin}`], v[`cachegate_requests_total{method=GET,outcome=miss,upstream=bin}`], v[`cachegate_requests_total{method=GET,outcome=hit,upstream=bin}`])
	if got := v[`cachegate_upstream_requests_total{upstream=bin}`]; got != 1 {
		t.Errorf("%v upstream calls for a herd of %d, want 1", got, n)
	}
}

// A backend behind the hot tier reports its write-behind queue (empty
// here: when a write leaves it is the tier's own pacing).
func TestMetricsShowTheWriteBehindQueue(t *testing.T) {
	cold := memory.New(0)
	tier := tiered.New(cold, 1<<20, time.Minute).WriteBehind(tiered.WriteBehindOptions{Window: time.Hour})
	t.Cleanup(func() { tier.Close() })
	served := tier.Served()
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{Name: "x", URL: &url.URL{Scheme: "http", Host: "x.invalid"},
		Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)), Backend: served, BackendName: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	h := metrics.Handler(metrics.Options{Gateway: gw, Backends: map[string]cache.Backend{"default": served}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `cachegate_writebehind_queued_entries{backend="default"} 0`) {
		t.Fatalf("no write-behind queue in /metrics:\n%s", rec.Body.String())
	}
}

// Failed upstream exchanges are counted by kind: a 5xx answer, a body cut
// off before its length, an upstream that refuses the connection.
func TestMetricsCountUpstreamErrorsByKind(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/cut":
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("only this"))
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
		}
	}))
	t.Cleanup(up.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close() // nothing listens there now
	mk := func(name, raw string) gateway.Upstream {
		u, _ := url.Parse(raw)
		return gateway.Upstream{Name: name, URL: u, Policy: cache.DefaultPolicy(cache.Expiry(time.Hour)),
			Backend: memory.New(0), BackendName: "default", Timeout: 5 * time.Second}
	}
	gw, err := gateway.New(gateway.Options{}, mk("up", up.URL), mk("gone", closedURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	for _, target := range []string{"/fetch/up/fail", "/fetch/up/cut", "/fetch/gone/x"} {
		gw.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	}
	e := &env{gw: gw, metrics: metrics.Handler(metrics.Options{Gateway: gw})}
	_, v := e.scrape(t)
	for key, want := range map[string]float64{
		`cachegate_upstream_errors_total{kind=5xx,upstream=up}`:       1,
		`cachegate_upstream_errors_total{kind=cut_body,upstream=up}`:  1,
		`cachegate_upstream_errors_total{kind=refused,upstream=up}`:   0,
		`cachegate_upstream_errors_total{kind=refused,upstream=gone}`: 1,
		`cachegate_upstream_errors_total{kind=timeout,upstream=gone}`: 0,
	} {
		if got, ok := v[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
}

// Reloads are counted by result, and an upstream a reload adds has its
// series from its first request.
func TestMetricsCountReloads(t *testing.T) {
	e := newEnv(t)
	up := e.gw.Upstreams()[0]
	u, _ := url.Parse(up.URL)
	b := memory.New(0)
	ups := func(expire time.Duration, names ...string) []gateway.Upstream {
		var out []gateway.Upstream
		for _, n := range names {
			out = append(out, gateway.Upstream{Name: n, URL: u, Policy: cache.DefaultPolicy(cache.Expiry(expire)), Backend: b, BackendName: "default"})
		}
		return out
	}
	if _, err := e.gw.Reload(ups(time.Minute, "bin", "added")...); err != nil {
		t.Fatal(err)
	}
	bad := ups(time.Minute, "bin")
	bad[0].Policy.AllowableCodes = []int{1000}
	if _, err := e.gw.Reload(bad...); err == nil {
		t.Fatal("a bad policy reloaded")
	}
	rec := httptest.NewRecorder()
	e.gw.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fetch/added/x", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("the added upstream answered %d", rec.Code)
	}
	_, v := e.scrape(t)
	for key, want := range map[string]float64{
		`cachegate_config_reloads_total{result=ok}`:                        1,
		`cachegate_config_reloads_total{result=error}`:                     1,
		`cachegate_requests_total{method=GET,outcome=miss,upstream=added}`: 1,
		`cachegate_upstream_requests_total{upstream=added}`:                1,
	} {
		if v[key] != want {
			t.Errorf("%s = %v, want %v", key, v[key], want)
		}
	}
	if loaded := v["cachegate_config_loaded_timestamp_seconds{}"]; loaded < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("config loaded at %v, want a moment ago", loaded)
	}
}

// Every request is counted once, under its method and outcome, and timed
// under that outcome, whatever way it ends: an answer cut when the
// upstream's body breaks off (a streamed miss, a pass-through), a body
// that does not decode, an only-if-cached refusal, a HEAD.
func TestMetricsOutcomesAddUpToTheRequests(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/cut":
			w.Header().Set("Content-Length", "200000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 100000))
			w.(http.Flusher).Flush()
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
		case "/badgzip":
			w.Header().Set("Content-Encoding", "gzip")
			fmt.Fprint(w, "this is not gzip")
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	p := cache.DefaultPolicy(cache.Expiry(time.Hour))
	p.AllowableMethods = []string{http.MethodGet, http.MethodHead}
	b := memory.New(0)
	gw, err := gateway.New(gateway.Options{}, gateway.Upstream{Name: "bin", URL: u, Policy: p, Backend: b, BackendName: "default", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	e := &env{gw: gw, metrics: metrics.Handler(metrics.Options{Gateway: gw, Backends: map[string]cache.Backend{"default": b}})}

	send := func(method, path string, header ...string) {
		req, _ := http.NewRequest(method, srv.URL+"/fetch/bin"+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			return // a cut answer may fail before its head
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(http.MethodGet, "/cut")     // a streamed miss, cut: miss
	send(http.MethodPost, "/cut")    // passed through, cut: bypass
	send(http.MethodGet, "/badgzip") // 502: error
	send(http.MethodGet, "/never", "Cache-Control", "only-if-cached")
	send(http.MethodHead, "/h") // miss
	send(http.MethodGet, "/h")  // hit
	const requests = 6

	_, v := e.scrape(t)
	want := map[string]float64{
		`cachegate_requests_total{method=GET,outcome=miss,upstream=bin}`:    1,
		`cachegate_requests_total{method=POST,outcome=bypass,upstream=bin}`: 1,
		`cachegate_requests_total{method=GET,outcome=error,upstream=bin}`:   2,
		`cachegate_requests_total{method=HEAD,outcome=miss,upstream=bin}`:   1,
		`cachegate_requests_total{method=GET,outcome=hit,upstream=bin}`:     1,
		`cachegate_upstream_errors_total{kind=cut_body,upstream=bin}`:       2,
	}
	for key, n := range want {
		if v[key] != n {
			t.Errorf("%s = %v, want %v", key, v[key], n)
		}
	}
	var sum float64
	timed := map[string]float64{}
	for key, n := range v {
		if strings.HasPrefix(key, "cachegate_requests_total{") {
			sum += n
			o := key[strings.Index(key, "outcome=")+len("outcome=") : strings.Index(key, ",upstream")]
			timed[o] += n
		}
	}
	if sum != requests {
		t.Errorf("the outcomes add up to %v, want the %d requests", sum, requests)
	}
	for _, o := range gateway.Outcomes {
		if got := v[`cachegate_response_duration_seconds{outcome=`+o+`,upstream=bin}_count`]; got != timed[o] {
			t.Errorf("%s answers timed %v, counted %v", o, got, timed[o])
		}
	}
}
