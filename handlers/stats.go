package handlers

import (
	"net/http"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/go-chi/chi/v5"
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
	TargetedCacheControl []string `json:"targeted_cache_control"`
	AllowableCodes       []int    `json:"allowable_codes"`
	AllowableMethods     []string `json:"allowable_methods"`
	IgnoredParameters    []string `json:"ignored_parameters"`
	StaleIfError         string   `json:"stale_if_error"`
	StaleWhileRevalidate string   `json:"stale_while_revalidate"`
	AlwaysRevalidate     bool     `json:"always_revalidate"`
	EntryHeaders         bool     `json:"entry_headers"`
	// The rest of the policy.
	ReadTimeout                string          `json:"read_timeout"`
	TotalTimeout               string          `json:"total_timeout"`
	URLsExpireAfter            []urlRuleJSON   `json:"urls_expire_after"`
	ExpiryRules                []expiryRuleRef `json:"expiry_rules"`
	MatchHeaders               []string        `json:"match_headers"`
	MatchAllHeaders            bool            `json:"match_all_headers"`
	ShareCredentialedResponses bool            `json:"share_credentialed_responses"`
	PrivateCache               bool            `json:"private_cache"`
	ClientOverrides            bool            `json:"client_overrides"`
	MaxBodySize                int64           `json:"max_body_size"`
	ContentTypes               []string        `json:"content_types"`
	ExcludeContentTypes        []string        `json:"exclude_content_types"`
	Key                        keyPartsJSON    `json:"key"`
	// Filter is the filter expression; "" when there is none.
	Filter string `json:"filter"`
	// RevalidateHeaders names the headers an admin revalidation adds;
	// their values are secrets and never shown.
	RevalidateHeaders []string `json:"revalidate_headers"`
	// Health: the counters so far. Healthy is false when the latest
	// upstream calls mostly failed.
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	HitRatio float64 `json:"hit_ratio"`
	Healthy  bool    `json:"healthy"`
	// Bypassed is the runtime switch of POST /api/upstreams/{name}/bypass.
	Bypassed bool `json:"bypassed"`
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
		j := upstreamJSON{
			Name: u.Name, URL: u.URL, Backend: u.Backend, Timeout: u.Timeout, Mode: string(p.Mode),
			ExpireAfter: p.ExpireAfter.String(), CacheControl: p.CacheControl, TargetedCacheControl: p.TargetedFields(),
			AllowableCodes: nonNilList(p.AllowableCodes), AllowableMethods: nonNilList(p.AllowableMethods),
			IgnoredParameters: nonNilList(p.IgnoredParameters),
			StaleIfError:      p.StaleIfError.String(), StaleWhileRevalidate: p.StaleWhileRevalidate.String(),
			AlwaysRevalidate: p.AlwaysRevalidate, EntryHeaders: p.EntryHeaders,
			ReadTimeout: u.ReadTimeout, TotalTimeout: u.TotalTimeout,
			URLsExpireAfter: []urlRuleJSON{}, ExpiryRules: []expiryRuleRef{},
			MatchHeaders: nonNilList(p.MatchHeaders), MatchAllHeaders: p.MatchAllHeaders,
			ShareCredentialedResponses: p.ShareCredentialedResponses, PrivateCache: p.PrivateCache,
			ClientOverrides: p.ClientOverrides, MaxBodySize: p.MaxBodySize,
			ContentTypes: nonNilList(p.ContentTypes), ExcludeContentTypes: nonNilList(p.ExcludeContentTypes),
			Key:               keyPartsJSON{IgnoreQuery: p.Key.IgnoreQuery, IgnoreBody: p.Key.IgnoreBody, IgnoreHeaders: p.Key.IgnoreHeaders, Expression: u.Key},
			Filter:            u.Filter,
			RevalidateHeaders: nonNilList(u.RevalidateHeaderNames),
			Requests:          c.Requests, Errors: c.Errors, HitRatio: c.HitRatio,
			Healthy: healthy(c), Bypassed: u.Bypassed,
		}
		for _, r := range p.URLsExpireAfter {
			j.URLsExpireAfter = append(j.URLsExpireAfter, urlRuleJSON{Pattern: r.Pattern, ExpireAfter: r.Expire.String()})
		}
		for _, r := range p.ExpiryRules() {
			j.ExpiryRules = append(j.ExpiryRules, expiryRuleRef{Rule: r.Rule, Pattern: r.Pattern, Expire: r.Expire, Note: r.Note, ReasonPrefix: r.ReasonPrefix})
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"upstreams": out, "config": a.gw.ConfigStatus()})
}

// handleReload reads the configuration again, as SIGHUP does, and answers
// with the upstream rules then in force; a configuration that fails
// leaves the running one and answers 422 with the reason.
func (a *API) handleReload(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	if a.reload == nil {
		a.writeError(w, r, &Error{Status: http.StatusConflict, Code: "reload_unavailable", Message: "this server has no configuration to read again"})
		return
	}
	if err := a.reload(); err != nil {
		a.writeError(w, r, &Error{Status: http.StatusUnprocessableEntity, Code: "reload_failed", Message: err.Error()})
		return
	}
	a.handleUpstreamList(w, r)
}

// healthy judges an upstream by its counters: unhealthy when more than
// half of its upstream calls failed. With no calls yet it is healthy.
func healthy(c gateway.CounterValues) bool {
	return c.UpstreamCalls == 0 || c.Errors*2 <= c.UpstreamCalls
}

// urlRuleJSON is one urls_expire_after rule, as configured.
type urlRuleJSON struct {
	Pattern     string `json:"pattern"`
	ExpireAfter string `json:"expire_after"`
}

// expiryRuleRef is one step of the chain that gives an entry its expiry;
// an entry's reason starts with its reason_prefix (the entries listing's
// reason filter takes it).
type expiryRuleRef struct {
	Rule         string `json:"rule"`
	Pattern      string `json:"pattern,omitempty"`
	Expire       string `json:"expire,omitempty"`
	Note         string `json:"note,omitempty"`
	ReasonPrefix string `json:"reason_prefix"`
}

// keyPartsJSON says which parts of a request are left out of its key.
type keyPartsJSON struct {
	IgnoreQuery   bool `json:"ignore_query"`
	IgnoreBody    bool `json:"ignore_body"`
	IgnoreHeaders bool `json:"ignore_headers"`
	// Expression is the key expression, which stands in for the URL;
	// "" when there is none.
	Expression string `json:"expression"`
}

// nonNilList answers an unset list as [] rather than null, so clients
// can iterate without checking.
func nonNilList[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// bypassRequest is the body of POST /api/upstreams/{name}/bypass.
type bypassRequest struct {
	// Bypass turns the cache off for the upstream (true) or on again.
	Bypass *bool `json:"bypass"`
}

// handleUpstreamBypass switches an upstream's cache off or on at run time,
// as requests-cache's disabled(): while off, its requests are forwarded
// without reading or writing the cache. It lasts until switched again or
// the server restarts.
func (a *API) handleUpstreamBypass(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	var req bypassRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.Bypass == nil {
		a.writeError(w, r, badRequest("bad_body", `the body must say {"bypass": true} or {"bypass": false}`))
		return
	}
	if err := a.gw.SetBypass(name, *req.Bypass); err != nil {
		a.writeError(w, r, &Error{Status: http.StatusNotFound, Code: "unknown_upstream", Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"upstream": name, "bypassed": *req.Bypass})
}
