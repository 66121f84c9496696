// Package handlers serves cachegate's admin side: the JSON API under
// /api/. Handlers parse, call the gateway or a backend, and answer through
// one helper; routes.go lists every route and errors.go turns errors into
// responses.
package handlers

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/jobs"
)

// Gateway is what the admin API needs from the caching proxy;
// *gateway.Gateway implements it.
type Gateway interface {
	// Revalidate asks the upstream about the entry under key in b and
	// updates b (see gateway.Gateway.Revalidate).
	Revalidate(ctx context.Context, b cache.Backend, key string) (gateway.Revalidation, error)
	// Explain tells what the gateway would do with a request.
	Explain(ctx context.Context, upstream, rawURL, method string, header http.Header) (gateway.Explanation, error)
	// ResolveURL finds the upstream a pasted URL belongs to.
	ResolveURL(raw string) (upstream, rawURL string, err error)
	// Stats returns the request counters.
	Stats() *gateway.Stats
	// Upstreams lists the configured upstreams.
	Upstreams() []gateway.UpstreamInfo
	// SetBypass switches an upstream's cache off or on at run time.
	SetBypass(upstream string, on bool) error
	// ConfigStatus tells when the upstream rules were loaded and how
	// reloads went.
	ConfigStatus() gateway.ConfigStatus
}

var _ Gateway = (*gateway.Gateway)(nil)

// Options configure the API.
type Options struct {
	// Backends are the open backends by name; "default" is the one used
	// when a request names none. Only these names are reachable.
	Backends map[string]cache.Backend
	// DSNs are the backends' DSNs, passwords redacted, by name.
	DSNs map[string]string
	// Token, when set, is the bearer token every request must carry.
	Token string
	// Disabled, when set, turns the whole API off: every request gets 403
	// with this message (the server listens beyond loopback without a
	// token).
	Disabled string
	// AdminHosts are Host names the admin side answers to besides
	// loopback names, IP literals and ListenHost (see hostAllowed).
	AdminHosts []string
	// ListenHost is the host of the listen address.
	ListenHost string
	// TrustedProxies are the peers whose X-Forwarded-For, -Host and -Proto
	// are believed. A request with proxy headers from any other peer is
	// judged remote.
	TrustedProxies []netip.Prefix
	// Now is the clock of sessions and of the sign-in limit; nil means
	// time.Now.
	Now func() time.Time
	// Reload reads the configuration again and puts its upstream rules in
	// force, for POST /api/reload; nil when the server cannot reload.
	Reload func() error
	// RevalidateConcurrency bounds concurrent upstream requests of a bulk
	// revalidation, per upstream (default 4).
	RevalidateConcurrency int
	// Jobs tunes the job registry.
	Jobs jobs.Options
	// Events tunes the /ws event stream.
	Events EventOptions
}

// API serves /api/. Create it with NewAPI, mount it with Mount, and Close
// it before closing the backends so that running jobs stop first.
type API struct {
	log         *slog.Logger
	gw          Gateway
	backends    map[string]cache.Backend
	names       []string                 // backend names, sorted
	canonical   map[cache.Backend]string // the first name of each backend, for job locks
	dsns        map[string]string
	token       string
	disabled    string
	concurrency int
	reload      func() error // Options.Reload
	jobs        *jobs.Registry
	events      *events      // the /ws clients' shared state
	liveFigures *figureCache // backend sizes for the overview and /ws, counted at most every few seconds

	hosts       map[string]bool // admin_hosts and the listen host, lower case
	proxies     []netip.Prefix
	now         func() time.Time
	localSecret [32]byte // keys CSRF tokens when no admin token is set
	signins     *limiter // failed sign-ins per client address
}

// NewAPI returns the admin API over gw and the backends in opts.
func NewAPI(log *slog.Logger, gw Gateway, opts Options) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{
		log: log, gw: gw, backends: opts.Backends, dsns: opts.DSNs, token: opts.Token, disabled: opts.Disabled,
		concurrency: opts.RevalidateConcurrency, canonical: map[cache.Backend]string{}, jobs: jobs.New(opts.Jobs),
		reload: opts.Reload,
	}
	if a.concurrency <= 0 {
		a.concurrency = 4
	}
	a.now = opts.Now
	if a.now == nil {
		a.now = time.Now
	}
	a.proxies = opts.TrustedProxies
	a.hosts = map[string]bool{}
	for _, h := range append([]string{opts.ListenHost}, opts.AdminHosts...) {
		if h = strings.TrimSuffix(strings.ToLower(h), "."); h != "" {
			a.hosts[h] = true
		}
	}
	_, _ = rand.Read(a.localSecret[:]) // never fails (crypto/rand)
	a.signins = newLimiter(a.now)
	a.events = newEvents(opts.Events)
	a.liveFigures = newFigureCache(a)
	for name := range a.backends {
		a.names = append(a.names, name)
	}
	sort.Strings(a.names)
	// One backend may be configured under several names (a DSN named twice
	// is opened once); locks go by the backend, not the name.
	for _, name := range a.names {
		b := a.backends[name]
		if _, ok := a.canonical[b]; !ok {
			a.canonical[b] = name
		}
	}
	return a
}

// Jobs returns the job registry, for the dashboard to list and subscribe
// to jobs.
func (a *API) Jobs() *jobs.Registry { return a.jobs }

// Close closes the /ws clients, cancels running jobs and waits for them
// to end.
func (a *API) Close() {
	a.events.close()
	a.jobs.Close()
}

// backend returns the backend a request names with ?backend= (or the
// default one). Names come only from the configured map, so no input can
// reach another store.
// queryBackend checks the request's query parameters against accepted
// (which includes "backend") and returns them with the backend they name.
func (a *API) queryBackend(r *http.Request, accepted ...string) (url.Values, string, cache.Backend, error) {
	v, err := queryParams(r, accepted...)
	if err != nil {
		return nil, "", nil, err
	}
	name, b, err := a.backend(v.Get("backend"))
	return v, name, b, err
}

func (a *API) backend(name string) (string, cache.Backend, error) {
	if name == "" {
		name = cache.DefaultBackendName
	}
	b, ok := a.backends[name]
	if !ok {
		return "", nil, &Error{Status: http.StatusNotFound, Code: "unknown_backend",
			Message: "no backend named " + quote(name) + "; configured backends: " + strings.Join(a.names, ", ")}
	}
	return name, b, nil
}

// lockName names a backend for job locks.
func (a *API) lockName(b cache.Backend) string { return a.canonical[b] }

// UniqueBackends returns the open backends, each once under its first
// name: a backend configured under several names counts once.
func (a *API) UniqueBackends() map[string]cache.Backend {
	out := make(map[string]cache.Backend, len(a.canonical))
	for b, name := range a.canonical {
		out[name] = b
	}
	return out
}
