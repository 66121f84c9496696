package gateway

import (
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// ConfigStatus tells when the upstream rules in force were loaded and how
// reloads went, for /api/upstreams and the metrics.
type ConfigStatus struct {
	// LoadedAt is when the rules in force were loaded: at start or by the
	// last reload that succeeded.
	LoadedAt time.Time `json:"loaded_at"`
	// Reloads counts the reloads that succeeded, ReloadErrors those that
	// failed and left the rules as they were.
	Reloads      int64 `json:"reloads"`
	ReloadErrors int64 `json:"reload_errors"`
	// LastError is why the last reload failed, empty when it succeeded
	// (or none was tried); LastErrorAt is when it failed.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// ConfigStatus returns the state of the configuration in force.
func (g *Gateway) ConfigStatus() ConfigStatus {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	return g.config
}

// ReloadFailed records a reload that failed before it reached Reload (the
// file did not parse, or changed a setting that needs a restart): the
// rules stay as they are and ConfigStatus says why.
func (g *Gateway) ReloadFailed(err error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	g.failed(err)
}

// failed records a failed reload; callers hold reloadMu.
func (g *Gateway) failed(err error) {
	g.config.ReloadErrors++
	g.config.LastError = err.Error()
	g.config.LastErrorAt = g.now()
}

// ReloadChanges names the upstreams a reload added, removed and changed,
// each list sorted.
type ReloadChanges struct {
	Added, Removed, Changed []string
}

// Reload replaces the upstreams in force with ups, all or nothing: when
// one of them is invalid nothing changes and the error names it.
//
// The new set is swapped in at once. A request that has already looked
// its upstream up finishes under the rules it started with; the next one
// sees the new ones. An upstream whose settings are all the same keeps
// everything (its key memo, connections, refusals); a changed one starts
// afresh, so that no key or decision made under the old rules is served
// under the new, but keeps its counters, its bypass switch and, when the
// URL's host and the timeouts are the same, its pooled connections. A
// removed upstream's counters stay until the process ends; one added
// again later starts with the switch off.
func (g *Gateway) Reload(ups ...Upstream) (ReloadChanges, error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.upstreams.Load()
	set, err := g.buildSet(ups, old)
	if err != nil {
		g.failed(err)
		return ReloadChanges{}, err
	}
	var ch ReloadChanges
	for _, n := range set.names {
		u := set.byName[n]
		prev, kept := old.byName[n]
		switch {
		case !kept:
			ch.Added = append(ch.Added, n)
		case prev != u:
			ch.Changed = append(ch.Changed, n)
		}
		if u.counters == nil {
			u.counters = g.stats.addUpstream(n)
		}
	}
	for _, n := range old.names {
		if _, ok := set.byName[n]; !ok {
			ch.Removed = append(ch.Removed, n)
		}
	}
	g.upstreams.Store(set)
	for _, n := range old.names {
		u := old.byName[n]
		if nu, ok := set.byName[n]; !ok || nu.client != u.client {
			// Requests still running on it keep their connections.
			u.client.CloseIdleConnections()
		}
	}
	g.config.Reloads++
	g.config.LoadedAt = g.now()
	g.config.LastError, g.config.LastErrorAt = "", time.Time{}
	return ch, nil
}

// buildSet validates ups and builds the set of them. With old (a reload),
// an upstream whose settings did not change is old's own, and a changed
// one takes over what outlives a change (see Reload). Callers other than
// New hold reloadMu.
func (g *Gateway) buildSet(ups []Upstream, old *upstreamSet) (*upstreamSet, error) {
	set := &upstreamSet{byName: make(map[string]*upstream, len(ups))}
	newRecorders := map[cache.Backend]*hitRecorder{}
	for _, u := range ups {
		if err := checkUpstream(&u); err != nil {
			return nil, err
		}
		if _, dup := set.byName[u.Name]; dup {
			return nil, fmt.Errorf("upstream %q: configured twice", u.Name)
		}
		var prev *upstream
		if old != nil {
			prev = old.byName[u.Name]
		}
		if prev != nil && sameUpstream(prev.Upstream, u) {
			set.byName[u.Name] = prev
			set.names = append(set.names, u.Name)
			continue
		}
		rec, ok := g.recorders[u.Backend]
		if !ok {
			if rec, ok = newRecorders[u.Backend]; !ok {
				rec = newHitRecorder(u.Backend, g.log)
				newRecorders[u.Backend] = rec
			}
		}
		nu := &upstream{Upstream: u, hits: rec, token: g.token, health: g.healthOf(u.Backend)}
		if prev != nil {
			nu.counters = prev.counters
			nu.bypassed.Store(prev.bypassed.Load())
			if sameTransport(prev.Upstream, u) {
				nu.client = prev.client
			}
		}
		if nu.client == nil {
			nu.client = &http.Client{
				Transport: &timeoutTransport{base: &codingTransport{base: newTransport(u.Timeout, u.Dial)}, read: u.ReadTimeout, total: u.TotalTimeout},
				// Redirects are the client's business: pass them on.
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
		for _, w := range u.Policy.Warnings() {
			// Logged once here, where the policy is validated; loading
			// the config stays free of side effects.
			g.log.Warn("config warning", "field", "upstreams."+u.Name+"."+w.Field, "warning", w.Message)
		}
		set.byName[u.Name] = nu
		set.names = append(set.names, u.Name)
	}
	sort.Strings(set.names)
	for b, rec := range newRecorders {
		g.recorders[b] = rec
	}
	return set, nil
}

// checkUpstream validates u and fills in its defaults.
func checkUpstream(u *Upstream) error {
	if u.Name == "" || strings.ContainsAny(u.Name, "/?#%") {
		return fmt.Errorf("upstream %q: the name must be a plain path segment", u.Name)
	}
	if u.URL == nil || (u.URL.Scheme != "http" && u.URL.Scheme != "https") || u.URL.Host == "" {
		return fmt.Errorf("upstream %q: url must be an absolute http or https URL", u.Name)
	}
	if u.Backend == nil {
		return fmt.Errorf("upstream %q: no backend", u.Name)
	}
	if err := u.Policy.Validate(); err != nil {
		return fmt.Errorf("upstream %q: %w", u.Name, err)
	}
	if u.Timeout <= 0 {
		u.Timeout = 30 * time.Second
	}
	if len(u.RevalidateHeaders) > 0 {
		h := make(http.Header, len(u.RevalidateHeaders))
		for k, v := range u.RevalidateHeaders {
			h[http.CanonicalHeaderKey(k)] = append([]string(nil), v...)
		}
		u.RevalidateHeaders = h
	}
	if u.ReadTimeout <= 0 {
		u.ReadTimeout = DefaultReadTimeout
	}
	if u.TotalTimeout <= 0 {
		u.TotalTimeout = DefaultTotalTimeout
	}
	return nil
}

// sameUpstream reports whether a and b, both checked, have the same
// settings. Dial functions cannot be compared: only whether one is set
// counts, so a caller that reloads an upstream with a Dial must give one
// that reaches the same place (web gives the demo's own each time).
func sameUpstream(a, b Upstream) bool {
	return a.Name == b.Name && a.URL.String() == b.URL.String() && a.Backend == b.Backend && a.BackendName == b.BackendName &&
		sameTransport(a, b) && reflect.DeepEqual(a.Policy, b.Policy) && reflect.DeepEqual(a.RevalidateHeaders, b.RevalidateHeaders)
}

// sameTransport reports whether a's connections may serve b: same scheme,
// host and timeouts (see sameUpstream for Dial).
func sameTransport(a, b Upstream) bool {
	return a.URL.Scheme == b.URL.Scheme && a.URL.Host == b.URL.Host && a.Timeout == b.Timeout &&
		a.ReadTimeout == b.ReadTimeout && a.TotalTimeout == b.TotalTimeout && (a.Dial == nil) == (b.Dial == nil)
}
