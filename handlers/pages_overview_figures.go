package handlers

import (
	"context"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/views"
)

// backendFigure is one backend's size as /ws and the overview show it.
type backendFigure struct {
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
	Err     string `json:"error,omitempty"`
}

// figureRefresh is how long counts are reused: fifty open overviews cost
// the backends one count every few seconds, not fifty a second.
const (
	figureRefresh  = 3 * time.Second
	insightRefresh = 30 * time.Second
)

// figureCache counts the backends for the overview and /ws, shared by
// every client and reused for figureRefresh; the heavier insight of one
// backend (histograms, top entries, privacy audit) for insightRefresh.
type figureCache struct {
	a *API

	mu       sync.Mutex // protects the fields below
	at       time.Time
	figs     map[string]backendFigure
	counting bool
	insights map[string]*insight // by backend name
}

func newFigureCache(a *API) *figureCache {
	return &figureCache{a: a, insights: map[string]*insight{}}
}

// get returns the latest counts without waiting (nil before the first);
// when they are old it starts one recount in the background.
func (f *figureCache) get() map[string]backendFigure {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.counting && f.a.now().Sub(f.at) >= figureRefresh {
		f.counting = true
		go f.count()
	}
	return f.figs
}

// wait returns counts no older than figureRefresh, counting now if need
// be (a page load).
func (f *figureCache) wait(ctx context.Context) map[string]backendFigure {
	f.mu.Lock()
	fresh := f.figs != nil && f.a.now().Sub(f.at) < figureRefresh
	figs := f.figs
	f.mu.Unlock()
	if fresh {
		return figs
	}
	return f.countWith(ctx)
}

func (f *figureCache) count() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*healthTimeout)
	defer cancel()
	f.countWith(ctx)
	f.mu.Lock()
	f.counting = false
	f.mu.Unlock()
}

func (f *figureCache) countWith(ctx context.Context) map[string]backendFigure {
	totals := f.a.countBackends(ctx)
	figs := make(map[string]backendFigure, len(f.a.names))
	for _, name := range f.a.names {
		t := totals[f.a.backends[name]]
		fig := backendFigure{Entries: t.Entries, Bytes: t.Bytes}
		if t.err != nil {
			fig.Err = healthMessage(t.err)
		}
		figs[name] = fig
	}
	f.mu.Lock()
	f.figs, f.at = figs, f.a.now()
	f.mu.Unlock()
	return figs
}

// insight is what the overview shows of one backend beyond its size.
type insight struct {
	at               time.Time
	dist             views.Distribution
	hottest, largest []views.TopEntry
	topErr           string
	privacy          views.PrivacyAudit
}

// insight returns b's insight, computed at most every insightRefresh.
// Each part is a few bounded queries: bucket counts, two ten-entry
// pages, and the audit's counts.
func (f *figureCache) insight(ctx context.Context, name string, b cache.Backend, now time.Time) *insight {
	f.mu.Lock()
	in := f.insights[name]
	f.mu.Unlock()
	if in != nil && now.Sub(in.at) < insightRefresh {
		return in
	}
	in = &insight{at: now}
	ctx, cancel := context.WithTimeout(ctx, 2*healthTimeout)
	defer cancel()
	in.dist = distribution(ctx, name, b, now)
	in.hottest, in.largest, in.topErr = topEntries(ctx, b)
	in.privacy = f.a.privacyAudit(ctx, b)
	f.mu.Lock()
	f.insights[name] = in
	f.mu.Unlock()
	return in
}

func distribution(ctx context.Context, name string, b cache.Backend, now time.Time) views.Distribution {
	d := views.Distribution{Backend: name, CountedAt: now}
	for i, sb := range sizeBounds {
		t, err := b.Count(ctx, sizeFilter(i))
		if err != nil {
			d.Err = healthMessage(err)
			return d
		}
		d.Size = append(d.Size, views.Bucket{Label: sb.label, Count: t.Entries})
	}
	for i, eb := range expiryBounds {
		t, err := b.Count(ctx, expiryFilter(i, now))
		if err != nil {
			d.Err = healthMessage(err)
			return d
		}
		d.Expiry = append(d.Expiry, views.Bucket{Label: eb.label, Count: t.Entries})
	}
	return d
}

func topEntries(ctx context.Context, b cache.Backend) (hottest, largest []views.TopEntry, errMsg string) {
	list := func(field cache.SortField) ([]views.TopEntry, error) {
		p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: field, Desc: true}, Limit: 10})
		if err != nil {
			return nil, err
		}
		out := make([]views.TopEntry, 0, len(p.Entries))
		for _, e := range p.Entries {
			if field == cache.SortHits && e.Hits == 0 {
				break // never hit is not hot
			}
			// The stored URL is redacted already (ignored parameters and
			// credentials), as the JSON listing shows it.
			out = append(out, views.TopEntry{Key: e.Key, URL: e.URL, Upstream: e.Upstream, Hits: e.Hits, Size: e.Size})
		}
		return out, nil
	}
	var err error
	if hottest, err = list(cache.SortHits); err == nil {
		largest, err = list(cache.SortSize)
	}
	if err != nil {
		return nil, nil, healthMessage(err)
	}
	return hottest, largest, ""
}
