package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The admin pages' targets at a million entries (issue 13): the entries
// list, first page and page 1,000, under 50 ms of server time; an entry's
// detail under 20 ms; browsing slows hits by at most 5%; a page and what it
// loads weigh under 100 KB compressed.
const (
	entriesPageTarget = 50 * time.Millisecond
	detailPageTarget  = 20 * time.Millisecond
	browsingSlowdown  = 0.05
	pageWeightTarget  = 100 << 10
	// browseEvery is how often the browsing loop loads a page: four pages
	// a second, quicker than anyone clicks.
	browseEvery = 250 * time.Millisecond
)

// pagesResult is what the million-entry run measured of the admin pages.
type pagesResult struct {
	pages []pageTiming
	// weight is the entries page's own HTML plus the stylesheet and
	// scripts it loads, each as the server sends it compressed.
	weight, htmlBytes int
	assets            []string
	// alone and browsing are the hot-URL wrk runs without and with the
	// browsing loop, interleaved; loads counts the pages it loaded.
	alone, browsing []wrkRun
	loads           int
	// watched are the hot-URL runs with overviewSockets /ws clients on the
	// stats and requests topics, interleaved with alone; messages counts
	// what they read.
	watched  []wrkRun
	messages int64
}

// overviewSockets is how many overview pages the cost of live pages is
// measured with (issue 14: fifty cost under 3% of the hit throughput).
const (
	overviewSockets = 50
	socketsSlowdown = 0.03
)

type pageTiming struct {
	what, path string
	target     time.Duration
	t          timed
}

// measurePages times the Entries page (sorted by size and by expiry, first
// page and page listPages, reached with the cursors walkList followed) and
// an entry's detail on the large gateway, weighs the entries page, and
// compares hit throughput with and without someone browsing.
func (b *bench) measurePages(ctx context.Context, large *target, m *millionResult) (*pagesResult, error) {
	pr := &pagesResult{}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	for _, l := range m.lists {
		pr.pages = append(pr.pages,
			pageTiming{what: "Entries, first page", path: "/entries?" + l.query, target: entriesPageTarget},
			pageTiming{what: fmt.Sprintf("Entries, page %d", listPages), path: "/entries?" + l.query + "&next=" + url.QueryEscape(l.deepNext), target: entriesPageTarget})
	}
	if len(m.lists) > 0 && m.lists[0].firstKey != "" {
		pr.pages = append(pr.pages, pageTiming{what: "Entry detail", path: "/entries/" + m.lists[0].firstKey, target: detailPageTarget})
	}
	for i := range pr.pages {
		p := &pr.pages[i]
		var ds []time.Duration
		for range 5 {
			_, d, err := getPage(ctx, client, large.base+p.path, "")
			if err != nil {
				return pr, err
			}
			ds = append(ds, d)
		}
		p.t = timed{median: percentile(ds, 0.5), max: slices.Max(ds)}
		logf("million entries: page %s: %s", p.path, p.t)
	}
	if err := pr.weigh(ctx, client, large.base, pr.pages[0].path); err != nil {
		return pr, err
	}

	// Hits with and without a browsing loop, interleaved.
	script := filepath.Join(b.cfg.dir, "hot-pages.lua")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(hotLua, hotCount, large.prefix)), 0o600); err != nil {
		return pr, err
	}
	for r := 1; r <= hotRounds(b.cfg); r++ {
		ru, err := b.load(ctx, large, large.base+"/", "-s", script)
		if err != nil {
			return pr, err
		}
		pr.alone = append(pr.alone, ru)
		logRun(fmt.Sprintf("round %d hits, no page open", r), ru)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(browseEvery)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, _, err := getPage(ctx, client, large.base+pr.pages[i%len(pr.pages)].path, ""); err == nil {
					pr.loads++
				}
			}
		}()
		ru, err = b.load(ctx, large, large.base+"/", "-s", script)
		close(stop)
		wg.Wait()
		if err != nil {
			return pr, err
		}
		pr.browsing = append(pr.browsing, ru)
		logRun(fmt.Sprintf("round %d hits, browsing", r), ru)

		socks, err := openOverviews(ctx, large.base, overviewSockets, &pr.messages)
		if err != nil {
			return pr, err
		}
		ru, err = b.load(ctx, large, large.base+"/", "-s", script)
		socks.close()
		if err != nil {
			return pr, err
		}
		pr.watched = append(pr.watched, ru)
		logRun(fmt.Sprintf("round %d hits, %d /ws clients", r, overviewSockets), ru)
	}
	return pr, nil
}

// sockets are open /ws clients reading everything they are sent.
type sockets struct {
	conns []*websocket.Conn
	wg    sync.WaitGroup
}

// openOverviews connects n /ws clients as overview pages do (stats and
// the request tail) and reads their messages until close, counting them
// into messages.
func openOverviews(ctx context.Context, base string, n int, messages *int64) (*sockets, error) {
	s := &sockets{}
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	for range n {
		c, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("dial %s: %w", u, err)
		}
		if err := c.WriteJSON(map[string][]string{"subscribe": {"jobs", "stats", "requests"}}); err != nil {
			c.Close()
			s.close()
			return nil, err
		}
		s.conns = append(s.conns, c)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
				atomic.AddInt64(messages, 1)
			}
		}()
	}
	return s, nil
}

func (s *sockets) close() {
	for _, c := range s.conns {
		c.Close()
	}
	s.wg.Wait()
}

// getPage GETs an admin page (or, with accept, an asset) and returns its
// body as sent, compressed or not, and how long the answer took.
func getPage(ctx context.Context, client *http.Client, u, acceptEncoding string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, err
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, took, fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, body)
	}
	return body, took, nil
}

// assetRef finds the stylesheet and scripts a page loads.
var assetRef = regexp.MustCompile(`(?:href|src)="(/static/[^"]+\.(?:css|js))"`)

// weigh adds up the page at path, gzipped as a proxy in front would send
// it, and each asset it loads, as the server sends it to a browser that
// accepts gzip.
func (pr *pagesResult) weigh(ctx context.Context, client *http.Client, base, path string) error {
	html, _, err := getPage(ctx, client, base+path, "")
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(html)
	zw.Close()
	pr.htmlBytes = gz.Len()
	pr.weight = gz.Len()
	for _, ref := range assetRef.FindAllStringSubmatch(string(html), -1) {
		body, _, err := getPage(ctx, client, base+ref[1], "gzip")
		if err != nil {
			return err
		}
		pr.weight += len(body)
		pr.assets = append(pr.assets, fmt.Sprintf("`%s` %.1f KB", strings.TrimPrefix(ref[1], "/static/"), float64(len(body))/1000))
	}
	return nil
}

func (pr *pagesResult) markdown(entries int) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	w("**Admin pages** on the %d-entry cache (the whole answer as a loopback client times it, an upper bound on server time; median of 5, slowest in brackets):\n\n| page | path | time | target |\n|---|---|---:|---:|\n", entries)
	for _, p := range pr.pages {
		w("| %s | `%s` | %s | under %s |\n", p.what, truncatePath(p.path), p.t, fmtDur(p.target))
	}
	w("\nThe Entries page weighs %.1f KB compressed with what it loads: its HTML %.1f KB gzipped, %s.\n\n", float64(pr.weight)/1000, float64(pr.htmlBytes)/1000, strings.Join(pr.assets, ", "))
	if len(pr.alone) > 0 && len(pr.browsing) > 0 {
		a, br := summarize(pr.alone), summarize(pr.browsing)
		w("Hits on the hot URLs while one client loads these pages every %s (%d pages loaded), in %d interleaved rounds: %s req/s against %s req/s with no page open (%.3f×).\n\n",
			browseEvery, pr.loads, len(pr.alone), fmtRPS(br.rps), fmtRPS(a.rps), br.rps/a.rps)
	}
	if len(pr.alone) > 0 && len(pr.watched) > 0 {
		a, wa := summarize(pr.alone), summarize(pr.watched)
		w("The same hits with %d `/ws` clients connected as overview pages (stats, jobs and the request tail; %d messages read): %s req/s against %s req/s with none (%.3f×).\n\n",
			overviewSockets, pr.messages, fmtRPS(wa.rps), fmtRPS(a.rps), wa.rps/a.rps)
	}
	return b.String()
}

func (pr *pagesResult) checks(entries int) []string {
	var out []string
	for _, p := range pr.pages {
		out = append(out, fmt.Sprintf("%s page %s at %d entries: %s (target under %s)", verdict(p.t.median < p.target), p.what, entries, fmtDur(p.t.median), fmtDur(p.target)))
	}
	out = append(out, fmt.Sprintf("%s Entries page weight: %.1f KB compressed with its assets (target under %d KB)", verdict(pr.weight < pageWeightTarget), float64(pr.weight)/1000, pageWeightTarget>>10))
	if len(pr.alone) > 0 && len(pr.browsing) > 0 {
		a, br := summarize(pr.alone), summarize(pr.browsing)
		out = append(out, fmt.Sprintf("%s hits while browsing the pages: %s req/s against %s alone (%.3f×; target: at most %.0f%% slower)",
			verdict(br.rps >= (1-browsingSlowdown)*a.rps), fmtRPS(br.rps), fmtRPS(a.rps), br.rps/a.rps, browsingSlowdown*100))
	}
	if len(pr.alone) > 0 && len(pr.watched) > 0 {
		a, wa := summarize(pr.alone), summarize(pr.watched)
		out = append(out, fmt.Sprintf("%s hits with %d overview sockets open: %s req/s against %s with none (%.3f×; target: at most %.0f%% slower)",
			verdict(wa.rps >= (1-socketsSlowdown)*a.rps), overviewSockets, fmtRPS(wa.rps), fmtRPS(a.rps), wa.rps/a.rps, socketsSlowdown*100))
	}
	return out
}

// truncatePath keeps a table cell short: cursors are long.
func truncatePath(p string) string {
	if len(p) > 70 {
		return p[:67] + "..."
	}
	return p
}
