package handlers

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/views"
)

// The entry detail page and its actions. They call what the JSON routes
// on /api/entries/{key} call (the backend, the gateway's Explain and
// Revalidate) and redact the same way; the body routes exist because the
// API takes no session cookie.

const (
	// maxPretty caps what the body viewer pretty-prints or shows as text:
	// a page stays light whatever the entry holds; the download has it all.
	maxPretty = 256 << 10
	// maxHex is how much of a binary body the hex dump shows.
	maxHex = 1 << 10
	// maxIndent is the largest JSON body the viewer indents (then shows
	// the first maxPretty of): indenting is fast, colouring is not.
	maxIndent = 4 << 20
)

// handleEntryPage shows one entry: request, response, body, key, the rule
// behind its expiry, and the actions.
func (a *API) handleEntryPage(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := a.pageEntry(w, r)
	if !ok {
		return
	}
	key := e.Key
	l := a.layout(r, "Entry "+key, "/entries")
	a.render(w, r, http.StatusOK, views.Entry(l, a.entryView(r, l, e, a.now())))
}

// handleEntryRevalidatePage revalidates one entry the way POST
// /api/entries/{key}/revalidate does and shows the page with the outcome.
// htmx picks #entry-detail out of it; without scripts it is the page.
func (a *API) handleEntryRevalidatePage(w http.ResponseWriter, r *http.Request) {
	_, name, b, ok := a.pageQuery(w, r)
	if !ok {
		return
	}
	key, err := entryKey(r)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	res, err := a.gw.Revalidate(r.Context(), b, key)
	var outcome *views.RevalidationView
	switch {
	case errors.Is(err, gateway.ErrNotFound):
		a.entryMissing(w, r, key)
		return
	case errors.Is(err, gateway.ErrUnknownUpstream):
		// Imported from elsewhere, say: there is nobody to ask.
		outcome = &views.RevalidationView{Outcome: gateway.OutcomeError,
			Error: sentence(err.Error()) + ". Nothing was sent; the entry is unchanged."}
	case err != nil:
		// An entry whose URL is not its upstream's, or a backend that
		// failed to read or write it: either way nothing changed. A
		// backend that is down fails the read below too.
		a.log.Warn("entry page: revalidate failed", "backend", name, "key", key, "err", err)
		outcome = &views.RevalidationView{Outcome: gateway.OutcomeError,
			Error: "Could not revalidate: " + err.Error() + ". The entry is unchanged."}
	default:
		outcome = revalidationView(res)
	}
	l := a.layout(r, "Entry "+key, "/entries")
	// The backend picker goes to the entry's page, not to this action.
	l.Path = "/entries/" + url.PathEscape(key)
	e, found, err := b.Get(r.Context(), key)
	if err != nil {
		a.backendDown(w, r, name, err)
		return
	}
	now := a.now()
	v := views.EntryView{Key: key, Now: now, Gone: !found}
	if found {
		v = a.entryView(r, l, e, now)
	}
	v.Revalidation = outcome
	a.render(w, r, http.StatusOK, views.Entry(l, v))
}

// handleEntryDeletePage deletes one entry and goes back to the entries
// list, which says what was deleted. A failure leaves the entry and says
// why.
func (a *API) handleEntryDeletePage(w http.ResponseWriter, r *http.Request) {
	// Read first for its size: the list the delete returns to says how
	// many bytes went.
	e, name, b, ok := a.pageEntry(w, r)
	if !ok {
		return
	}
	deleted, err := b.Delete(r.Context(), e.Key)
	if err != nil {
		a.backendDown(w, r, name, err)
		return
	}
	if !deleted {
		a.entryMissing(w, r, e.Key)
		return
	}
	l := views.Layout{Backend: name, DefaultBackend: cache.DefaultBackendName}
	http.Redirect(w, r, l.LinkWith("/entries", url.Values{"deleted": {"1"}, "freed": {strconv.FormatInt(e.Size, 10)}}), http.StatusSeeOther)
}

// handleEntryBodyPage downloads the stored body, as GET
// /api/entries/{key}/body answers it but as an attachment, for the
// signed-in browser (the API takes no session cookie).
func (a *API) handleEntryBodyPage(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := a.pageEntry(w, r)
	if !ok {
		return
	}
	ct := e.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": downloadName(e)}))
	writeStoredBody(w, r, e, ct)
}

// handleEntryImagePage serves the stored body for the viewer's <img>, and
// only when it is an image that cannot run (no SVG): anything else is a
// 404, so the route never serves a page with the admin origin.
func (a *API) handleEntryImagePage(w http.ResponseWriter, r *http.Request) {
	e, _, _, ok := a.pageEntry(w, r)
	if !ok {
		return
	}
	ct := mediaType(e.Header.Get("Content-Type"))
	if !inlineImages[ct] {
		a.renderError(w, r, http.StatusNotFound, "This entry's body is not an image the page shows",
			"Download it from the entry's page instead.")
		return
	}
	writeStoredBody(w, r, e, ct)
}

// pageEntry reads the entry a page's {key} names from the backend its
// query names, answering the error page itself when there is none.
func (a *API) pageEntry(w http.ResponseWriter, r *http.Request) (e *cache.Entry, name string, b cache.Backend, ok bool) {
	_, name, b, ok = a.pageQuery(w, r)
	if !ok {
		return nil, "", nil, false
	}
	key, err := entryKey(r)
	if err != nil {
		a.pageError(w, r, err)
		return nil, "", nil, false
	}
	e, found, err := b.Get(r.Context(), key)
	if err != nil {
		a.backendDown(w, r, name, err)
		return nil, "", nil, false
	}
	if !found {
		a.entryMissing(w, r, key)
		return nil, "", nil, false
	}
	return e, name, b, true
}

// writeStoredBody answers a stored body as it is, sandboxed: whatever an
// upstream sent must not run as a page on the admin origin.
func writeStoredBody(w http.ResponseWriter, r *http.Request, e *cache.Entry, ct string) {
	h := w.Header()
	h.Set("Content-Type", ct)
	if ce := e.Header.Get("Content-Encoding"); ce != "" {
		h.Set("Content-Encoding", ce)
	}
	h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(e.Body)
	}
}

// entryMissing is the 404 of an unknown key, with the way to the list.
func (a *API) entryMissing(w http.ResponseWriter, r *http.Request, key string) {
	l := a.layout(r, "Not Found", "/entries")
	a.render(w, r, http.StatusNotFound, views.EntryMissing(l, views.ErrorView{Status: http.StatusNotFound,
		Title: "No entry with key " + key,
		Hint:  "It may have been deleted, revalidated away or expired and purged, or the link is from another backend. Find it in the entries list."}))
}

// backendDown answers a backend that failed to read or write: the page
// says which and what to do, and nothing was changed.
func (a *API) backendDown(w http.ResponseWriter, r *http.Request, name string, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	var e *Error
	if errors.As(err, &e) {
		a.pageError(w, r, err)
		return
	}
	a.log.Error("entry page: backend failed", "backend", name, "path", r.URL.Path, "err", err)
	a.renderError(w, r, http.StatusServiceUnavailable, "Backend "+quote(name)+" did not answer",
		"It said: "+healthMessage(err)+". Nothing was changed. Check it on the Backends page, then reload.")
}

// entryView builds the page's model from e, redacted as GET
// /api/entries/{key} redacts it.
func (a *API) entryView(r *http.Request, l views.Layout, e *cache.Entry, now time.Time) views.EntryView {
	j := toEntryJSON(e, now)
	v := views.EntryView{
		Key: e.Key, BaseKey: e.BaseKey, Now: now,
		Upstream: e.Upstream, Method: e.Method, URL: e.URL,
		Status: e.Status, ContentType: e.ContentType, Size: e.Size,
		RequestTime: e.RequestTime, Created: e.Created, Expires: e.Expires, Fresh: j.Fresh,
		Hits: e.Hits, LastHit: e.LastHit, ETag: e.ETag, LastModified: e.LastModified, Reason: e.Reason,
	}
	up, known := a.upstreamInfo(e.Upstream)
	var match []string
	if known {
		match = up.Policy.MatchHeaders
	}
	vary := cache.VaryNames(e.Header)
	reqHeader := redact(e.RequestHeader)
	for _, name := range sortedHeaderNames(reqHeader) {
		role := ""
		switch {
		case containsFold(match, name):
			role = "match"
		case containsFold(vary, name):
			role = "vary"
		case isCredentialHeader(name) || strings.EqualFold(reqHeader.Get(name), gateway.Redacted):
			role = "credential"
		}
		for _, val := range reqHeader[name] {
			v.RequestHeaders = append(v.RequestHeaders, views.HeaderLine{Name: name, Value: val, Role: role})
		}
	}
	respHeader := redact(e.Header)
	for _, name := range sortedHeaderNames(respHeader) {
		for _, val := range respHeader[name] {
			v.ResponseHeaders = append(v.ResponseHeaders, views.HeaderLine{Name: name, Value: val})
		}
	}
	if len(e.RequestBody) > 0 {
		v.RequestBody = printable(e.RequestBody, maxHex)
	}
	download := l.LinkWith("/entries/"+url.PathEscape(e.Key)+"/body", nil)
	image := l.LinkWith("/entries/"+url.PathEscape(e.Key)+"/image", nil)
	v.Body = bodyView(e, download, image)

	x, err := a.gw.Explain(r.Context(), e.Upstream, e.URL, e.Method, e.RequestHeader.Clone())
	if err != nil {
		v.ExplainError = err.Error()
	} else {
		m := explainModel(x, now)
		m.Embedded = true
		v.Explain = &m
	}
	scheme, host := origin(r, a.client(r))
	v.Curl = curlCommand(scheme+"://"+host, up, known, e, v.RequestHeaders)
	return v
}

// upstreamInfo finds the configured upstream called name.
func (a *API) upstreamInfo(name string) (gateway.UpstreamInfo, bool) {
	for _, u := range a.gw.Upstreams() {
		if u.Name == name {
			return u, true
		}
	}
	return gateway.UpstreamInfo{}, false
}

func sortedHeaderNames(h http.Header) []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

func isCredentialHeader(name string) bool { return containsFold(sensitive, name) }

// revalidationView copies a revalidation's outcome into the view-model,
// the header changes redacted and the body's line diff set side by side.
func revalidationView(res gateway.Revalidation) *views.RevalidationView {
	v := &views.RevalidationView{Outcome: res.Outcome, Status: res.Status, Reason: res.Reason, Error: res.Error, Stored: res.Stored}
	if res.Expires != nil {
		v.Expires = *res.Expires
	}
	if c := res.Changes; c != nil {
		cv := &views.ChangesView{StatusBefore: c.StatusBefore, StatusAfter: c.StatusAfter, BodyChanged: c.BodyChanged,
			SizeBefore: c.SizeBefore, SizeAfter: c.SizeAfter}
		for _, h := range c.Headers {
			if isCredentialHeader(h.Name) {
				h.Before, h.After = redactedOrEmpty(h.Before), redactedOrEmpty(h.After)
				if h.Before == h.After {
					continue
				}
			}
			cv.Headers = append(cv.Headers, views.HeaderChangeView{Name: h.Name, Before: h.Before, After: h.After})
		}
		switch {
		case !c.BodyChanged:
		case strings.HasPrefix(c.BodyDiff, "("):
			cv.BodyNote = "No line diff: " + strings.Trim(c.BodyDiff, "()") + "."
		case c.BodyDiff == "":
			cv.BodyNote = "No line diff: the bodies are not text, or the new one is larger than max_body_size."
		default:
			cv.Body = sideBySide(c.BodyDiff)
		}
		v.Changes = cv
	}
	return v
}

func redactedOrEmpty(s string) string {
	if s == "" {
		return ""
	}
	return gateway.Redacted
}

// sideBySide turns the gateway's unified line diff ("-", "+", " " and "@@"
// between hunks) into rows: the removed lines of each run of changes are
// paired, in order, with its added lines (the diff may list either first).
func sideBySide(diff string) []views.DiffRow {
	var rows []views.DiffRow
	var dels, adds []string
	flush := func() {
		for i := 0; i < max(len(dels), len(adds)); i++ {
			row := views.DiffRow{LeftKind: "none", RightKind: "none"}
			if i < len(dels) {
				row.Left, row.LeftKind = dels[i], "del"
			}
			if i < len(adds) {
				row.Right, row.RightKind = adds[i], "add"
			}
			rows = append(rows, row)
		}
		dels, adds = dels[:0], adds[:0]
	}
	for _, line := range strings.Split(strings.TrimSuffix(diff, "\n"), "\n") {
		if line == "@@" {
			flush()
			rows = append(rows, views.DiffRow{LeftKind: "gap", RightKind: "gap"})
			continue
		}
		if line == "" {
			continue
		}
		kind, text := line[0], line[1:]
		switch kind {
		case '-':
			dels = append(dels, text)
		case '+':
			adds = append(adds, text)
		default:
			flush()
			rows = append(rows, views.DiffRow{Left: text, Right: text, LeftKind: "same", RightKind: "same"})
		}
	}
	flush()
	return rows
}

// curlCommand is the entry's request as a curl command through the
// gateway at base. The stored values are redacted already: a credential
// shows as REDACTED, for the user to fill in.
func curlCommand(base string, up gateway.UpstreamInfo, known bool, e *cache.Entry, headers []views.HeaderLine) string {
	target := e.URL
	if known {
		prefix := strings.TrimSuffix(up.URL, "/")
		if rest, ok := strings.CutPrefix(e.URL, prefix); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			target = base + "/fetch/" + up.Name + "/" + strings.TrimPrefix(rest, "/")
		}
	}
	first := "curl "
	switch e.Method {
	case http.MethodGet, "":
	case http.MethodHead:
		first += "-I "
	default:
		first += "-X " + e.Method + " "
	}
	parts := []string{first + shellQuote(target)}
	for _, h := range headers {
		parts = append(parts, "-H "+shellQuote(h.Name+": "+h.Value))
	}
	if len(e.RequestBody) > 0 && e.Method != http.MethodGet && e.Method != http.MethodHead {
		parts = append(parts, "--data-binary "+shellQuote(string(e.RequestBody)))
	}
	return strings.Join(parts, " \\\n  ")
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
