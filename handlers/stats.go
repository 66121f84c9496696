package handlers

import (
	"net/http"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// statsJSON is the answer of GET /api/stats.
type statsJSON struct {
	Time      time.Time                        `json:"time"`
	Upstreams map[string]gateway.CounterValues `json:"upstreams"`
	Total     gateway.CounterValues            `json:"total"`
	// Backends holds the entries and stored bytes of each backend.
	Backends map[string]cache.Totals `json:"backends"`
	// History holds the one-second samples of the last
	// gateway.HistoryLen seconds, oldest first, for charts; left out with
	// history=false.
	History []gateway.Sample `json:"history,omitempty"`
}

// handleStats answers the gateway counters per upstream and in total, the
// size of each backend, and a short history.
func (a *API) handleStats(w http.ResponseWriter, r *http.Request) {
	v, err := queryParams(r, "history")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	withHistory, err := parseBool(v, "history", true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	st := a.gw.Stats()
	snap := st.Snapshot()
	out := statsJSON{Time: snap.Time, Upstreams: snap.Upstreams, Total: snap.Total, Backends: map[string]cache.Totals{}}
	counted := map[cache.Backend]cache.Totals{}
	for _, name := range a.names {
		b := a.backends[name]
		t, ok := counted[b]
		if !ok {
			if t, err = b.Count(r.Context(), cache.Filter{}); err != nil {
				a.writeError(w, r, err)
				return
			}
			counted[b] = t
		}
		out.Backends[name] = t
	}
	if withHistory {
		out.History = st.History()
	}
	writeJSON(w, http.StatusOK, out)
}

// upstreamJSON describes a configured upstream and how it is doing.
type upstreamJSON struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Backend string `json:"backend"`
	Timeout string `json:"timeout"`
	Mode    string `json:"mode"`
	// The main caching rules, as configured.
	ExpireAfter          string   `json:"expire_after"`
	CacheControl         bool     `json:"cache_control"`
	AllowableCodes       []int    `json:"allowable_codes"`
	AllowableMethods     []string `json:"allowable_methods"`
	IgnoredParameters    []string `json:"ignored_parameters"`
	StaleIfError         string   `json:"stale_if_error"`
	StaleWhileRevalidate string   `json:"stale_while_revalidate"`
	AlwaysRevalidate     bool     `json:"always_revalidate"`
	// Health: the counters so far. Healthy is false when the latest
	// upstream calls mostly failed.
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	HitRatio float64 `json:"hit_ratio"`
	Healthy  bool    `json:"healthy"`
}

// handleUpstreamList answers every configured upstream with its rules and
// counters.
func (a *API) handleUpstreamList(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	snap := a.gw.Stats().Snapshot()
	ups := a.gw.Upstreams()
	out := make([]upstreamJSON, 0, len(ups))
	for _, u := range ups {
		p := u.Policy
		c := snap.Upstreams[u.Name]
		out = append(out, upstreamJSON{
			Name: u.Name, URL: u.URL, Backend: u.Backend, Timeout: u.Timeout, Mode: string(p.Mode),
			ExpireAfter: p.ExpireAfter.String(), CacheControl: p.CacheControl,
			AllowableCodes: p.AllowableCodes, AllowableMethods: p.AllowableMethods, IgnoredParameters: p.IgnoredParameters,
			StaleIfError: p.StaleIfError.String(), StaleWhileRevalidate: p.StaleWhileRevalidate.String(),
			AlwaysRevalidate: p.AlwaysRevalidate,
			Requests:         c.Requests, Errors: c.Errors, HitRatio: c.HitRatio,
			Healthy: healthy(c),
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": out})
}

// healthy judges an upstream by its counters: unhealthy when more than
// half of its upstream calls failed. With no calls yet it is healthy.
func healthy(c gateway.CounterValues) bool {
	return c.UpstreamCalls == 0 || c.Errors*2 <= c.UpstreamCalls
}
