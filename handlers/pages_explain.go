package handlers

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/views"
)

// maxHeaderLines bounds the Explain form's headers textarea.
const maxHeaderLines = 50

// handleExplainPage shows the Explain form and, once it carries a URL,
// what the gateway would do with that request: the same explanation GET
// /api/explain gives. A value the user got wrong shows on the page above
// the form they filled in, with a 400 or 404, and changes nothing.
func (a *API) handleExplainPage(w http.ResponseWriter, r *http.Request) {
	q, _, _, ok := a.pageQuery(w, r, "url", "upstream", "method", "headers")
	if !ok {
		return
	}
	ups := a.gw.Upstreams()
	v := views.ExplainView{Form: views.ExplainForm{
		URL: strings.TrimSpace(q.Get("url")), Upstream: q.Get("upstream"),
		Method: strings.TrimSpace(q.Get("method")), Headers: q.Get("headers"),
	}}
	for _, u := range ups {
		v.Upstreams = append(v.Upstreams, views.UpstreamChoice{Name: u.Name, URL: u.URL})
	}
	l := a.layout(r, "Explain", "/explain")
	// The backend picker carries the page's query along: the form's
	// values go into it redacted too.
	shown := redactForm(v.Form, ups)
	for name, val := range map[string]string{"url": shown.URL, "headers": shown.Headers} {
		if l.Query.Has(name) {
			l.Query.Set(name, val)
		}
	}
	fail := func(status int, title, hint string) {
		v.Error, v.Hint, v.Form = title, hint, shown
		a.render(w, r, status, views.ExplainPage(l, v))
	}
	header, bad := parseHeaderLines(v.Form.Headers)
	switch {
	case v.Form.URL == "" && (v.Form.Upstream != "" || v.Form.Method != "" || v.Form.Headers != ""):
		fail(http.StatusBadRequest, "Give a URL to explain", "Paste the URL a client sends to the gateway, or a path below the upstream you picked.")
		return
	case v.Form.URL == "":
		a.render(w, r, http.StatusOK, views.ExplainPage(l, v))
		return
	case bad != "":
		fail(http.StatusBadRequest, "The headers have a line that is not a header: "+strconv.Quote(bad),
			"Write one header a line, as Name: value (for example Accept: application/json).")
		return
	case v.Form.Method != "" && !validMethod(v.Form.Method):
		fail(http.StatusBadRequest, "The method "+strconv.Quote(v.Form.Method)+" is not an HTTP method",
			"Leave it empty for GET, or give one like GET, HEAD or POST.")
		return
	}
	x, err := a.explain(r.Context(), v.Form.Upstream, v.Form.URL, v.Form.Method, header)
	if err != nil {
		status, body := a.classify(r, err)
		switch {
		case status == http.StatusNotFound:
			fail(status, sentence(body.Error), "Pick one of the configured upstreams, or choose “Find it from the URL”.")
		case body.Code == "no_upstream":
			fail(status, sentence(body.Error), "Paste a URL on one of them, or pick the upstream and give a path below it.")
		case status == http.StatusBadRequest:
			fail(status, sentence(body.Error), "Check the URL: it must be on the upstream and stay below its base path.")
		default:
			fail(status, "The explanation could not be made: "+body.Error, pageHint(status))
		}
		return
	}
	v.Form = shown
	m := explainModel(x, a.now())
	v.Result = &m
	a.render(w, r, http.StatusOK, views.ExplainPage(l, v))
}

// explainModel turns the gateway's explanation into the view-model of the
// views.Explanation component, at now; the entry detail page builds its
// explanation with it too.
func explainModel(x gateway.Explanation, now time.Time) views.ExplainModel {
	m := views.ExplainModel{
		Upstream: x.Upstream, Backend: x.Backend, Mode: x.Mode, Method: x.Method, URL: x.URL, Key: x.Key,
		Cacheable: x.Cacheable, NotCacheable: x.NotCacheable, Assumed: x.Assumed,
		Store: x.Store, Rule: x.Rule, Reason: x.Reason, Never: x.Never, Now: now,
	}
	if x.Expires != nil {
		m.Expires = *x.Expires
	}
	for _, p := range x.KeyParts {
		m.KeyParts = append(m.KeyParts, views.KeyPartRow{Part: p.Part, Value: p.Value})
	}
	for _, e := range x.Expressions {
		row := views.ExpressionRow{Field: e.Field, Expression: e.Expression, Error: e.Error, Input: e.Input}
		if e.Error == "" {
			row.Result = fmt.Sprint(e.Result)
			if str, ok := e.Result.(string); ok {
				row.Result = strconv.Quote(str)
			}
		}
		m.Expressions = append(m.Expressions, row)
	}
	for _, s := range x.Chain {
		m.Chain = append(m.Chain, views.ChainRow{Rule: s.Rule, Pattern: s.Pattern, Expire: s.Expire, Note: s.Note, State: s.State, Won: s.Won})
	}
	if ref := x.LastNotStored; ref != nil {
		m.LastNotStored = &views.RefusalRow{Status: ref.Status, Rule: ref.Rule, Reason: ref.Reason, At: ref.At}
	}
	if c := x.Cached; c != nil {
		row := &views.CachedRow{
			Key: c.Key, Link: entryLink(x.Backend, c.Key), Fresh: c.Fresh, AgeSec: c.AgeSec, Hits: c.Hits,
			Stored: c.Stored, Answer: c.Answer, Why: c.Why, Varies: c.Variants, Created: c.Created,
		}
		if c.Expires != nil {
			row.Expires = *c.Expires
		}
		if c.LastHit != nil {
			row.LastHit = *c.LastHit
		}
		m.Cached = row
	}
	return m
}

// entryLink is the entry detail page of key on backend.
func entryLink(backend, key string) string {
	link := "/entries/" + url.PathEscape(key)
	if backend != "" && backend != cache.DefaultBackendName {
		link += "?" + url.Values{"backend": {backend}}.Encode()
	}
	return link
}

// parseHeaderLines reads the Explain form's textarea: one "Name: value"
// a line, blank lines skipped. bad is the first line that is not a
// header (or says there are too many).
func parseHeaderLines(s string) (h http.Header, bad string) {
	h = http.Header{}
	n := 0
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if n++; n > maxHeaderLines {
			return nil, "more than " + strconv.Itoa(maxHeaderLines) + " lines"
		}
		name, value, ok := cutHeader(line)
		if !ok {
			return nil, line
		}
		h.Add(name, value)
	}
	return h, ""
}

// validMethod reports whether m is an HTTP method token.
func validMethod(m string) bool {
	if m == "" || len(m) > 20 {
		return false
	}
	for _, c := range m {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// redactForm is the form as the page shows it again: values of
// credential headers, of headers and query parameters an upstream
// ignores, and of URL passwords, replaced by REDACTED, so a secret typed
// into the form is not written back into the page.
func redactForm(f views.ExplainForm, ups []gateway.UpstreamInfo) views.ExplainForm {
	ignored := func(name string) bool {
		if cache.IsCredential(name) {
			return true
		}
		for _, u := range ups {
			if u.Policy.IsIgnored(name) {
				return true
			}
		}
		return false
	}
	if lines := strings.Split(f.Headers, "\n"); len(lines) > 0 {
		for i, line := range lines {
			if name, _, ok := cutHeader(strings.TrimSpace(line)); ok && ignored(name) {
				lines[i] = name + ": " + gateway.Redacted
			}
		}
		f.Headers = strings.Join(lines, "\n")
	}
	f.URL = redactURL(f.URL, ignored)
	return f
}

// redactURL replaces the values of ignored query parameters and any
// userinfo password in raw, leaving the rest as typed.
func redactURL(raw string, ignored func(string) bool) string {
	head, query, hasQuery := strings.Cut(raw, "?")
	if u, err := url.Parse(head); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), gateway.Redacted)
			head = u.String()
		}
	}
	if !hasQuery {
		return head
	}
	pairs := strings.Split(query, "&")
	for i, p := range pairs {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil && ignored(n) {
			pairs[i] = name + "=" + gateway.Redacted
		}
	}
	return head + "?" + strings.Join(pairs, "&")
}
