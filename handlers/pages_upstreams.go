package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/views"
)

// handleUpstreamsPage shows every upstream with the rules in force, as
// GET /api/upstreams reports them, and counts the entries each expiry
// rule stored (by the reason prefix the rule writes).
func (a *API) handleUpstreamsPage(w http.ResponseWriter, r *http.Request) {
	if _, _, _, ok := a.pageQuery(w, r); !ok {
		return
	}
	conf := a.gw.ConfigStatus()
	v := views.UpstreamsView{LoadedAgo: views.Ago(conf.LoadedAt, a.now()), Reloads: conf.Reloads, ReloadError: conf.LastError}
	for _, u := range a.gw.Upstreams() {
		uv, err := a.upstreamView(r.Context(), u)
		if err != nil {
			return // the client went away
		}
		v.Upstreams = append(v.Upstreams, uv)
	}
	a.render(w, r, http.StatusOK, views.Upstreams(a.layout(r, "Upstreams", "/upstreams"), v))
}

// upstreamView builds one upstream's section. A backend that fails to
// count shows as an error in the section, not as a failed page; only the
// client going away is returned.
func (a *API) upstreamView(ctx context.Context, u gateway.UpstreamInfo) (views.UpstreamView, error) {
	p := u.Policy
	v := views.UpstreamView{
		Name: u.Name, URL: u.URL, Backend: u.Backend, Mode: string(p.Mode),
		EntriesLink: entriesLink(u.Backend, url.Values{"upstream": {u.Name}}),
		Settings:    settingsOf(u),
	}
	rules := p.ExpiryRules()
	for _, r := range rules {
		v.Rules = append(v.Rules, views.RuleRow{Rule: r.Rule, Pattern: r.Pattern, Expire: r.Expire, Note: r.Note,
			Link: entriesLink(u.Backend, url.Values{"upstream": {u.Name}, "reason": {r.ReasonPrefix}})})
	}
	b, ok := a.backends[u.Backend]
	if !ok {
		v.CountErr = "backend " + quote(u.Backend) + " is not one the admin side opened"
		return v, nil
	}
	// One bound for all the counts, so a slow backend cannot hold the
	// page for a timeout per rule.
	cctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	count := func(f cache.Filter) (cache.Totals, bool) {
		t, err := b.Count(cctx, f)
		if err != nil && v.CountErr == "" {
			v.CountErr = healthMessage(err)
		}
		return t, err == nil
	}
	all, ok := count(cache.Filter{Upstream: u.Name})
	if !ok {
		return v, ctx.Err()
	}
	v.Entries, v.Bytes = all.Entries, all.Bytes
	v.Other, v.OtherBytes = all.Entries, all.Bytes
	for i, r := range rules {
		t, ok := count(cache.Filter{Upstream: u.Name, Reason: r.ReasonPrefix})
		if !ok {
			return v, ctx.Err()
		}
		v.Rules[i].Entries, v.Rules[i].Bytes = t.Entries, t.Bytes
		v.Other -= t.Entries
		v.OtherBytes -= t.Bytes
	}
	if v.Other < 0 {
		// Entries stored between the counts; nothing is missing.
		v.Other, v.OtherBytes = 0, 0
	}
	return v, nil
}

// entriesLink is the Entries page filtered by q, on backend.
func entriesLink(backend string, q url.Values) string {
	if backend != "" && backend != cache.DefaultBackendName {
		q.Set("backend", backend)
	}
	return "/entries?" + q.Encode()
}

// settingsOf lists the policy settings beside the expiry rules, named as
// the config file names them. Values of revalidate_headers are secrets:
// only their names are shown.
func settingsOf(u gateway.UpstreamInfo) []views.Setting {
	p := u.Policy
	var out []views.Setting
	add := func(name, value, note string, off bool) {
		out = append(out, views.Setting{Name: name, Value: value, Note: note, Off: off})
	}
	flag := func(name string, on bool, note string) {
		add(name, strconv.FormatBool(on), note, !on)
	}
	list := func(name string, vals []string, empty, note string) {
		if len(vals) == 0 {
			add(name, empty, note, true)
			return
		}
		add(name, strings.Join(vals, ", "), note, false)
	}
	// The runtime switch first: while it is on, nothing below applies.
	flag("bypassed", u.Bypassed, "the admin API's runtime switch: true skips the cache until switched back or a restart")
	add("stale_if_error", p.StaleIfError.String(), staleNote(p.StaleIfError, "served when the upstream fails"), !p.StaleIfError.On)
	add("stale_while_revalidate", p.StaleWhileRevalidate.String(), staleNote(p.StaleWhileRevalidate, "served at once while it is refreshed in the background"), !p.StaleWhileRevalidate.On)
	if len(p.AllowableCodes) == 0 {
		add("allowable_codes", "every final status but 206 and 304", "", false)
	} else {
		codes := make([]string, len(p.AllowableCodes))
		for i, c := range p.AllowableCodes {
			codes[i] = strconv.Itoa(c)
		}
		list("allowable_codes", codes, "", "")
	}
	list("allowable_methods", p.AllowableMethods, "", "other methods pass through")
	ignoredNote := "left out of the key and redacted in storage"
	if len(p.Warnings()) > 0 {
		ignoredNote += "; credential headers listed here stay in the key, hashed (share_credentialed_responses is off)"
	}
	list("ignored_parameters", p.IgnoredParameters, "none", ignoredNote)
	if p.MatchAllHeaders {
		add("match_headers", "every request header", "", false)
	} else {
		list("match_headers", p.MatchHeaders, "none", "request headers that take part in the key (Vary counts too)")
	}
	if p.Mode == cache.ModeRFC9111 {
		flag("cache_control", p.CacheControl, "always on in rfc9111 mode: the response's freshness decides")
	} else {
		flag("cache_control", p.CacheControl, "the upstream's Cache-Control and Expires decide first")
	}
	list("targeted_cache_control", p.TargetedFields(), "none (off)", "RFC 9213 fields that govern caching in place of Cache-Control and Expires, where those are read")
	flag("entry_headers", p.EntryHeaders, "answers from the cache carry X-Cachegate-Key, -Created and -Expires")
	flag("always_revalidate", p.AlwaysRevalidate, "entries with a validator are revalidated on every request")
	flag("share_credentialed_responses", p.ShareCredentialedResponses, "credential headers in ignored_parameters leave the key, so clients with different credentials share entries")
	flag("private_cache", p.PrivateCache, "responses marked Cache-Control: private may be stored")
	flag("client_overrides", p.ClientOverrides, "any client may send "+cache.ExpireAfterHeader+" and "+cache.ForceRefreshHeader+"; off, only with the admin token")
	add("timeout", u.Timeout, "for the response headers", false)
	add("read_timeout", u.ReadTimeout, "without a byte of the body", false)
	add("total_timeout", u.TotalTimeout, "for one exchange, headers and body", false)
	add("max_body_size", views.Bytes(p.MaxBodySize), "larger bodies stream through unstored", false)
	list("content_types", p.ContentTypes, "any", "the only media types stored")
	list("exclude_content_types", p.ExcludeContentTypes, "none", "media types never stored")
	var keyOff []string
	if p.Key.IgnoreQuery {
		keyOff = append(keyOff, "ignore_query")
	}
	if p.Key.IgnoreBody {
		keyOff = append(keyOff, "ignore_body")
	}
	if p.Key.IgnoreHeaders {
		keyOff = append(keyOff, "ignore_headers")
	}
	list("key", keyOff, "method, URL, query, body and match_headers", "what the cache key leaves out")
	if u.Key != "" {
		add("key.expression", u.Key, "gives the part of the cache key the URL is otherwise", false)
	}
	if u.Filter != "" {
		add("filter", u.Filter, "a response the rules would store is stored only when this gives true", false)
	}
	list("revalidate_headers", u.RevalidateHeaderNames, "none", "added to admin revalidations only; their values are secret and never shown")
	return out
}

// staleNote says what a stale setting allows.
func staleNote(s cache.Staleness, what string) string {
	switch {
	case !s.On:
		return ""
	case s.Max == 0:
		return "a stale entry is " + what + ", however stale"
	}
	return fmt.Sprintf("a stale entry is %s, up to %s stale", what, s.Max)
}
