// Package gateway is cachegate's caching reverse proxy: it maps
// /fetch/<upstream>/<path> onto configured upstreams, answers from a
// cache.Backend by the upstream's cache.Policy, collapses concurrent misses,
// and counts what it does.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway/expr"
)

// Upstream is one configured upstream as the gateway needs it.
type Upstream struct {
	// Name is the path segment after /fetch/.
	Name string
	// URL is the base URL requests are forwarded below.
	URL *url.URL
	// Policy holds the caching rules; New validates it.
	Policy cache.Policy
	// Backend stores this upstream's entries; BackendName names it.
	Backend     cache.Backend
	BackendName string
	// Timeout bounds the wait for the upstream's response headers.
	Timeout time.Duration
	// ReadTimeout ends a response body from which no byte arrived for
	// this long (default DefaultReadTimeout); TotalTimeout ends an
	// exchange this long after it began, headers and body (default
	// DefaultTotalTimeout). Without them an upstream that stalls in the
	// middle of a body would hold its client, and every request
	// collapsed onto the call, for ever.
	ReadTimeout  time.Duration
	TotalTimeout time.Duration
	// Dial, when set, opens the connections to the upstream instead of
	// dialing URL's host; the demo upstream uses it so its URL (and so the
	// cache keys) stay the same whatever port it listens on.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// RevalidateHeaders are sent with an admin revalidation of this
	// upstream's entries (never with /fetch/ traffic), to fill what the
	// stored request lacks: values of headers stored REDACTED, the
	// credential an entry was cached for (used only when it is that very
	// credential), or a header the upstream wants. They are secrets: the
	// gateway never stores, logs or shows them.
	RevalidateHeaders http.Header
	// KeyExpr, when set, gives the part of the cache key that the
	// normalized URL is otherwise (requests-cache's key_fn); FilterExpr,
	// when set, must say true for a response the policy would store to be
	// stored (filter_fn).
	KeyExpr    *expr.Key
	FilterExpr *expr.Filter
}

// Options tune a Gateway. The zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
	// StatsInterval is how often a sample goes into the stats history
	// (default 1s: the overview charts one point a second); HitFlushInterval how often hit counts reach the
	// backends (default 5s: a key hit a thousand times in between costs
	// the backend one update, which at a million SQLite entries is a
	// tenth of the CPU of serving its hits if done every second).
	StatsInterval    time.Duration
	HitFlushInterval time.Duration
	// MaxBackgroundRefreshes bounds concurrent stale-while-revalidate
	// refreshes (default 64).
	MaxBackgroundRefreshes int
	// AdminToken, when set, lets a /fetch/ request that sends it in
	// cache.TokenHeader use the per-request control headers on upstreams
	// without client_overrides.
	AdminToken string
	// MaxInflightBytes bounds the bytes of response bodies held in
	// memory until they are stored (default DefaultMaxInflightBytes). A
	// miss whose body the budget cannot take streams to its client
	// without being stored.
	MaxInflightBytes int64
	// WriteTimeout ends a streamed answer when one write to the client
	// makes no progress for this long (0: no deadline). It is set write
	// by write, so a long download to a client that keeps reading is
	// never cut.
	WriteTimeout time.Duration
	// AccessLog says which /fetch/ requests get an access log line;
	// the zero value logs them all to Logger.
	AccessLog AccessLogOptions
	// BackendProbeInterval is how often a backend that failed is pinged
	// until it answers again (default 1s); meanwhile requests skip it.
	BackendProbeInterval time.Duration
}

// Gateway is the caching reverse proxy. It is an http.Handler for paths
// starting with /fetch/.
type Gateway struct {
	log       *slog.Logger
	now       func() time.Time
	wallClock bool // now is time.Now: a time.Now taken already may stand in
	// upstreams is the set in force; Reload swaps in a new one whole, so
	// a request looks its upstream up without a lock and keeps the one it
	// found until it ends.
	upstreams atomic.Pointer[upstreamSet]
	stats     *Stats
	hub       *Hub
	flights   flightGroup
	heads     headMemo
	inflight  *budget
	token     adminToken
	// reloadMu serializes Reload and SetBypass, so a switch set during a
	// reload is neither lost nor applied to a set already replaced, and
	// protects recorders and config.
	reloadMu  sync.Mutex
	recorders map[cache.Backend]*hitRecorder // one per backend in use
	config    ConfigStatus
	// writeTimeout is Options.WriteTimeout.
	writeTimeout time.Duration
	access       *accessLog // nil: no access log
	requestIDs   *requestIDs

	health     sync.Map       // backend -> *backendHealth
	probeEvery time.Duration  // Options.BackendProbeInterval
	bg         sync.WaitGroup // background refreshes, loops and probes
	bgSlots    chan struct{}  // bounds background refreshes
	stop       chan struct{}
	closeOnce  sync.Once
}

type upstream struct {
	Upstream
	client   *http.Client
	counters *Counters
	hits     *hitRecorder
	memo     keyMemo
	token    adminToken // see overrides
	refused  refusals   // why recent responses were not stored, for Explain
	// bypassed is the runtime switch (SetBypass): while set, requests are
	// forwarded without reading or writing the cache, as requests-cache's
	// disabled() does.
	bypassed atomic.Bool
	// health is the backend's, shared with the other upstreams on it.
	health *backendHealth
}

// upstreamSet is the upstreams in force. It is never changed once
// published: Reload builds a new one.
type upstreamSet struct {
	byName map[string]*upstream
	names  []string // sorted
}

// New validates the upstreams and returns a running Gateway; Close stops
// its background work.
func New(opts Options, ups ...Upstream) (*Gateway, error) {
	g := &Gateway{
		log:       opts.Logger,
		now:       opts.Now,
		hub:       &Hub{},
		stop:      make(chan struct{}),
		token:     newAdminToken(opts.AdminToken),
		recorders: map[cache.Backend]*hitRecorder{},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
		g.wallClock = true
	}
	n := opts.MaxBackgroundRefreshes
	if n <= 0 {
		n = 64
	}
	g.bgSlots = make(chan struct{}, n)
	limit := opts.MaxInflightBytes
	if limit <= 0 {
		limit = DefaultMaxInflightBytes
	}
	g.inflight = newBudget(limit)
	g.writeTimeout = opts.WriteTimeout
	if err := opts.AccessLog.validate(); err != nil {
		return nil, err
	}
	g.access = newAccessLog(opts.AccessLog, g.log)
	g.requestIDs = newRequestIDs()
	set, err := g.buildSet(ups, nil)
	if err != nil {
		return nil, err
	}
	g.stats = newStats(g.now, set.names...)
	for name, u := range set.byName {
		u.counters = g.stats.Upstream(name)
	}
	g.upstreams.Store(set)
	g.config.LoadedAt = g.now()
	g.startLoops(opts)
	return g, nil
}

func (g *Gateway) startLoops(opts Options) {
	statsEvery := opts.StatsInterval
	if statsEvery <= 0 {
		statsEvery = time.Second
	}
	g.probeEvery = opts.BackendProbeInterval
	if g.probeEvery <= 0 {
		g.probeEvery = time.Second
	}
	flushEvery := opts.HitFlushInterval
	if flushEvery <= 0 {
		flushEvery = 5 * time.Second
	}
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		statsTick := time.NewTicker(statsEvery)
		flushTick := time.NewTicker(flushEvery)
		defer statsTick.Stop()
		defer flushTick.Stop()
		g.stats.Tick(g.now())
		for {
			select {
			case <-g.stop:
				return
			case <-statsTick.C:
				g.stats.Tick(g.now())
			case <-flushTick.C:
				g.FlushHits(context.Background())
			}
		}
	}()
}

// FlushHits hands the batched hit counts to the backends now.
func (g *Gateway) FlushHits(ctx context.Context) {
	g.reloadMu.Lock()
	recs := make([]*hitRecorder, 0, len(g.recorders))
	for _, r := range g.recorders {
		recs = append(recs, r)
	}
	g.reloadMu.Unlock()
	for _, r := range recs {
		r.flush(ctx)
	}
}

// Close stops background work, waits for running refreshes and flushes hit
// counts. It does not close the backends, which the caller owns.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		close(g.stop)
		g.bg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.FlushHits(ctx)
		for _, u := range g.upstreams.Load().byName {
			u.client.CloseIdleConnections()
		}
	})
	return nil
}

// Stats returns the gateway's counters.
func (g *Gateway) Stats() *Stats { return g.stats }

// Events returns the hub that request events are published on.
func (g *Gateway) Events() *Hub { return g.hub }

// UpstreamInfo describes a configured upstream.
type UpstreamInfo struct {
	Name         string       `json:"name"`
	URL          string       `json:"url"`
	Backend      string       `json:"backend"`
	Timeout      string       `json:"timeout"`
	ReadTimeout  string       `json:"read_timeout"`
	TotalTimeout string       `json:"total_timeout"`
	Policy       cache.Policy `json:"-"`
	// RevalidateHeaderNames names the headers an admin revalidation adds,
	// sorted; their values are secrets and never leave the gateway.
	RevalidateHeaderNames []string `json:"revalidate_headers"`
	// Bypassed reports the runtime switch SetBypass sets.
	Bypassed bool `json:"bypassed"`
	// Key and Filter are the sources of the key and filter expressions,
	// empty when there are none.
	Key    string `json:"key_expression,omitempty"`
	Filter string `json:"filter_expression,omitempty"`
}

// Upstreams lists the configured upstreams, sorted by name.
func (g *Gateway) Upstreams() []UpstreamInfo {
	set := g.upstreams.Load()
	out := make([]UpstreamInfo, 0, len(set.names))
	for _, n := range set.names {
		u := set.byName[n]
		names := make([]string, 0, len(u.RevalidateHeaders))
		for k := range u.RevalidateHeaders {
			names = append(names, k)
		}
		sort.Strings(names)
		out = append(out, UpstreamInfo{Name: n, URL: u.URL.String(), Backend: u.BackendName, Timeout: u.Timeout.String(),
			ReadTimeout: u.ReadTimeout.String(), TotalTimeout: u.TotalTimeout.String(), Policy: u.Policy,
			RevalidateHeaderNames: names, Bypassed: u.bypassed.Load(), Key: u.KeyExpr.String(), Filter: u.FilterExpr.String()})
	}
	return out
}

// SetBypass turns the cache off (on true) or on again for one upstream at
// run time: while off, its requests are forwarded without reading or
// writing the cache (X-Cache: BYPASS, Cache-Status detail=bypassed), and
// the entries stay as they are. It lasts until the next SetBypass or a
// restart, and through a Reload that keeps the upstream.
func (g *Gateway) SetBypass(name string, on bool) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	up, err := g.upstream(name)
	if err != nil {
		return err
	}
	up.bypassed.Store(on)
	return nil
}

// errUnknownUpstream is wrapped by lookups of an upstream that is not
// configured.
var errUnknownUpstream = errors.New("unknown upstream")

func (g *Gateway) upstream(name string) (*upstream, error) {
	set := g.upstreams.Load()
	u, ok := set.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q; configured upstreams: %s", errUnknownUpstream, name, strings.Join(set.names, ", "))
	}
	return u, nil
}

// splitFetchPath splits "/fetch/<name>/<rest>" (escaped) into name and rest.
func splitFetchPath(escaped string) (name, rest string, ok bool) {
	p, ok := strings.CutPrefix(escaped, "/fetch/")
	if !ok {
		return "", "", false
	}
	name, rest, _ = strings.Cut(p, "/")
	return name, rest, true
}

// errPathEscapes is returned for paths that try to climb out of the
// upstream's base path.
var errPathEscapes = errors.New("the path climbs out of the upstream ('.' or '..' segments, encoded or not, are refused)")

// target maps the escaped rest of a /fetch/ path and a raw query onto the
// upstream. The result's host is always the upstream's: no request can
// reach another host.
func (u *upstream) target(rest, rawQuery string) (*url.URL, error) {
	dec, err := url.PathUnescape(rest)
	if err != nil {
		return nil, fmt.Errorf("the path is not validly percent-encoded: %w", err)
	}
	for _, seg := range strings.FieldsFunc(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return nil, errPathEscapes
		}
	}
	if strings.ContainsRune(dec, 0) {
		return nil, errors.New("the path contains a NUL byte")
	}
	escPath := strings.TrimSuffix(u.URL.EscapedPath(), "/") + "/" + rest
	t, err := url.Parse(u.URL.Scheme + "://" + u.URL.Host + escPath)
	if err != nil || t.Host != u.URL.Host {
		return nil, fmt.Errorf("the path does not form a valid URL below the upstream")
	}
	// A raw '#' or '?' in rest would end the path early, and what is left
	// ("/prefix/.%2e" of ".%2e#") may climb out: only the whole path counts.
	if t.Fragment != "" || t.RawQuery != "" || strings.ContainsAny(rest, "#?") {
		return nil, errors.New("the path holds a raw '#' or '?': percent-encode them")
	}
	t.RawQuery = rawQuery
	return t, nil
}
