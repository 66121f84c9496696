package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/jobs"
	"github.com/cachegate/cachegate/transfer"
	"github.com/cachegate/cachegate/views"
)

// entriesPageParams are the query parameters of GET /entries: the API
// listing's (filter, sort, order, limit, next) plus prev, the cursor of
// the previous page, and the notices an action redirects back with.
var entriesPageParams = append([]string{"sort", "order", "limit", "next", "prev", "deleted", "freed", "job"}, filterParams...)

// handleEntriesPage lists a backend's entries the way GET /api/entries
// does (the same parser, the same backend calls), as a page. A bad filter
// value is a message next to the form, not an error page.
func (a *API) handleEntriesPage(w http.ResponseWriter, r *http.Request) {
	v, name, b, ok := a.pageQuery(w, r, entriesPageParams...)
	if !ok {
		return
	}
	// The filter form sends its blank fields too; the address to keep
	// (bookmark, share) is the one without them.
	if clean, blanks := withoutBlanks(v); blanks {
		target := "/entries"
		if len(clean) > 0 {
			target += "?" + clean.Encode()
		}
		if !isPartial(r) {
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		w.Header().Set("HX-Push-Url", target)
		v = clean
	}
	now := a.now()
	l := a.layout(r, "Entries", "/entries")
	// Picking another backend keeps the filter and sort, not this
	// backend's cursors or the notices of what was done here.
	for _, k := range []string{"next", "prev", "deleted", "freed", "job"} {
		l.Query.Del(k)
	}
	view := views.EntriesView{Now: now, State: entriesState(v), Upstreams: a.upstreamNames()}
	for _, other := range a.names {
		if a.backends[other] != b {
			view.OtherBackends = append(view.OtherBackends, other)
		}
	}
	view.Notice = deletedNotice(v)
	if id := v.Get("job"); id != "" {
		if j, err := a.jobs.Get(id); err == nil {
			s := j.Snapshot()
			view.Job = &views.JobNotice{ID: s.ID, Kind: s.Kind, URL: l.Link("/jobs/" + url.PathEscape(s.ID)),
				State: string(s.State), Done: s.Done, Total: s.Total, Failed: s.Failed}
		}
	}
	q, err := a.entriesQuery(v, now)
	if err == nil {
		err = a.fillEntries(r, b, name, q, v.Get("prev") != "", &view, l)
	}
	if isInputError(err) {
		// The user's input: a message next to the form they can fix.
		_, body := a.classify(r, err)
		view.FilterError = sentence(body.Error)
		view.Sort, view.Desc = string(q.Sort.Field), q.Sort.Desc
		if isPartial(r) {
			// Only the message changes: the table and the address stay
			// as they were.
			h := w.Header()
			h.Set("HX-Retarget", "#filter-error")
			h.Set("HX-Reswap", "innerHTML")
			h.Set("HX-Push-Url", "false")
			a.render(w, r, http.StatusOK, views.FilterErrorMessage(view.FilterError))
			return
		}
		a.renderEntries(w, r, http.StatusBadRequest, l, view)
		return
	}
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	a.renderEntries(w, r, http.StatusOK, l, view)
}

// isInputError reports whether err is the user's: a bad parameter.
func isInputError(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status == http.StatusBadRequest
	}
	return errors.Is(err, cache.ErrInvalid)
}

// withoutBlanks returns v without its blank values, and whether it had any.
func withoutBlanks(v url.Values) (url.Values, bool) {
	out, blanks := url.Values{}, false
	for k, vs := range v {
		if len(vs) == 1 && strings.TrimSpace(vs[0]) == "" {
			blanks = true
			continue
		}
		out[k] = vs
	}
	return out, blanks
}

// renderEntries writes the whole page, or for htmx only the part it swaps.
func (a *API) renderEntries(w http.ResponseWriter, r *http.Request, status int, l views.Layout, v views.EntriesView) {
	if isPartial(r) {
		a.render(w, r, status, views.EntriesResults(l, v))
		return
	}
	a.render(w, r, status, views.Entries(l, v))
}

// isPartial reports whether htmx asked for a fragment to swap in. A
// history restore (back to a page htmx did not keep) wants the whole page.
func isPartial(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" && r.Header.Get("HX-History-Restore-Request") != "true"
}

// entriesState is the view's filter, sort and order from the query, blank
// values left out.
func entriesState(v url.Values) url.Values {
	out := url.Values{}
	for _, k := range append([]string{"sort", "order", "limit"}, filterParams...) {
		if s := strings.TrimSpace(v.Get(k)); s != "" {
			out.Set(k, s)
		}
	}
	return out
}

// entriesQuery parses the listing like GET /api/entries; prev (the cursor
// of the page before, in the reversed order) instead of next lists
// backwards.
func (a *API) entriesQuery(v url.Values, now time.Time) (cache.Query, error) {
	prev := v.Get("prev")
	if prev != "" && v.Get("next") != "" {
		return cache.Query{}, badRequest("bad_parameter", "give next or prev, not both")
	}
	q, err := parseListQuery(v, now)
	if err != nil || prev == "" {
		return q, err
	}
	rev := q.Sort
	rev.Desc = !rev.Desc
	if _, err := cache.ParseCursor(prev, rev); err != nil {
		return q, badRequest("bad_parameter", "parameter prev: "+trimInvalid(err))
	}
	q.Cursor = prev
	return q, nil
}

// fillEntries lists one page of q into view with the match's totals.
// Going back (backwards) lists in the reversed order after the prev
// cursor and turns the page round: a page's cursors are its first and last
// entries, so paging back costs what paging on does, at any depth.
func (a *API) fillEntries(r *http.Request, b cache.Backend, name string, q cache.Query, backwards bool, view *views.EntriesView, l views.Layout) error {
	ctx := r.Context()
	view.Sort, view.Desc = string(q.Sort.Field), q.Sort.Desc
	rev := q.Sort
	rev.Desc = !rev.Desc
	lq := q
	if backwards {
		lq.Sort = rev
	}
	page, err := b.List(ctx, lq)
	if err != nil {
		return err
	}
	entries := page.Entries
	if backwards {
		slices.Reverse(entries)
		if len(entries) > 0 {
			view.Next = cache.CursorAfter(entries[len(entries)-1], q.Sort)
			if page.Next != "" {
				view.Prev = cache.CursorAfter(entries[0], rev)
			}
		}
		view.Paged = page.Next != ""
	} else {
		view.Next = page.Next
		view.Paged = q.Cursor != ""
		if q.Cursor != "" && len(entries) > 0 {
			view.Prev = cache.CursorAfter(entries[0], rev)
		}
	}
	for _, e := range entries {
		view.Rows = append(view.Rows, views.EntryRow{
			Key: e.Key, Method: e.Method, URL: e.URL, Upstream: e.Upstream, ContentType: e.ContentType,
			Status: e.Status, Size: e.Size, Hits: e.Hits, Created: e.Created, Expires: e.Expires,
			LastHit: e.LastHit, Expired: e.IsExpired(view.Now),
		})
	}
	t, err := b.Count(ctx, q.Filter)
	if err != nil {
		return err
	}
	view.Total, view.TotalBytes = t.Entries, t.Bytes
	if t.Entries == 0 {
		// The header counted every backend already.
		for _, c := range l.Backends {
			if c.Name == name {
				view.BackendEmpty = c.Err == "" && c.Entries == 0
			}
		}
	}
	return nil
}

// upstreamNames lists the configured upstreams for the filter's select.
func (a *API) upstreamNames() []string {
	var names []string
	for _, u := range a.gw.Upstreams() {
		names = append(names, u.Name)
	}
	return names
}

// deletedNotice is the notice a bulk delete redirects back with.
func deletedNotice(v url.Values) string {
	n, err := strconv.ParseInt(v.Get("deleted"), 10, 64)
	if err != nil || n < 0 {
		return ""
	}
	freed, _ := strconv.ParseInt(v.Get("freed"), 10, 64)
	noun := "entries"
	if n == 1 {
		noun = "entry"
	}
	return fmt.Sprintf("Deleted %s %s (%s).", views.Count(n), noun, views.Bytes(freed))
}

// bulkFormFields are the fields the bulk bar posts: the selection (ticked
// keys, or all matching the filter), the view to return to, and what each
// action takes.
var bulkFormFields = append([]string{"csrf_token", "backend", "key", "all", "sort", "order", "limit", "format", "to", "confirm"}, filterParams...)

// bulkForm is a parsed bulk-bar submission.
type bulkForm struct {
	name   string
	b      cache.Backend
	f      cache.Filter
	form   url.Values
	keys   []string
	all    bool
	state  url.Values // the list's filter, sort and order
	filter url.Values // the filter alone
}

// query is the listing query of what the form selects, for the link from
// its job to those entries: "" for ticked rows, which no query selects.
func (bf *bulkForm) query() string {
	if len(bf.keys) > 0 {
		return ""
	}
	return bf.filter.Encode()
}

// parseBulkForm reads a bulk-bar submission into the same Selection the
// JSON bulk endpoints take, so "all matching" selects exactly what the
// API's filter would. Ticked rows select those keys; "all" selects the
// filter's match, and with an empty filter, explicitly, every entry.
// Nothing ticked is refused: no action ever falls through to everything.
func (a *API) parseBulkForm(w http.ResponseWriter, r *http.Request) (*bulkForm, bool) {
	if err := r.ParseForm(); err != nil {
		a.renderError(w, r, http.StatusBadRequest, "The form could not be read", "Go back to the entries and try again; nothing was changed.")
		return nil, false
	}
	form := r.PostForm
	if err := checkNames(form, "form field", bulkFormFields, []string{"key"}); err != nil {
		a.pageError(w, r, err)
		return nil, false
	}
	name, b, err := a.backend(form.Get("backend"))
	if err != nil {
		a.renderError(w, r, http.StatusNotFound, "No backend named "+quote(form.Get("backend")),
			"Configured backends: "+strings.Join(a.names, ", ")+". Pick one in the header and try again; nothing was changed.")
		return nil, false
	}
	bf := &bulkForm{name: name, b: b, form: form, keys: form["key"], all: form.Get("all") != "",
		state: entriesState(form), filter: url.Values{}}
	for _, k := range filterParams {
		if s := strings.TrimSpace(form.Get(k)); s != "" {
			bf.filter.Set(k, s)
		}
	}
	sel := Selection{}
	switch {
	case len(bf.keys) > 0:
		sel.Keys = bf.keys
	case bf.all && len(bf.filter) == 0:
		sel.All = true
	case bf.all:
		sel.Filter = map[string]json.RawMessage{}
		for k := range bf.filter {
			raw, _ := json.Marshal(bf.filter.Get(k))
			sel.Filter[k] = raw
		}
	default:
		a.renderError(w, r, http.StatusBadRequest, "No entries are selected",
			"Tick the entries to act on, or tick “All matching this filter”, then press the button again. Nothing was changed.")
		return nil, false
	}
	bf.f, err = sel.filter(a.now(), true)
	if err != nil {
		a.pageError(w, r, err)
		return nil, false
	}
	return bf, true
}

// listURL is the list the form came from, with more parameters.
func (a *API) listURL(bf *bulkForm, extra url.Values) string {
	q := url.Values{}
	for k, vs := range bf.state {
		q[k] = vs
	}
	for k, vs := range extra {
		q[k] = vs
	}
	if bf.name != cache.DefaultBackendName {
		q.Set("backend", bf.name)
	}
	if len(q) == 0 {
		return "/entries"
	}
	return "/entries?" + q.Encode()
}

// what says in words what a bulk form selects.
func (bf *bulkForm) what() string {
	switch {
	case len(bf.keys) > 0:
		return "the ticked entries"
	case len(bf.filter) == 0:
		return "every entry in backend " + bf.name
	}
	parts := make([]string, 0, len(bf.filter))
	for _, k := range sortedNames(bf.filter) {
		parts = append(parts, k+"="+bf.filter.Get(k))
	}
	return "all entries in backend " + bf.name + " matching " + strings.Join(parts, ", ")
}

func sortedNames(v url.Values) []string {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// handleEntriesDelete deletes the selection, as POST /api/delete does,
// after a confirmation that says how many entries and bytes: a page of
// its own without script (the dialog's confirm=yes skips it). It comes
// back to the list with the count deleted.
func (a *API) handleEntriesDelete(w http.ResponseWriter, r *http.Request) {
	bf, ok := a.parseBulkForm(w, r)
	if !ok {
		return
	}
	t, err := bf.b.Count(r.Context(), bf.f)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	if bf.form.Get("confirm") != "yes" {
		var hidden [][2]string
		for _, k := range sortedNames(bf.form) {
			if k == "confirm" || k == "format" || k == "to" {
				continue
			}
			for _, s := range bf.form[k] {
				hidden = append(hidden, [2]string{k, s})
			}
		}
		l := a.layout(r, "Delete entries?", "/entries")
		a.render(w, r, http.StatusOK, views.EntriesConfirm(l, views.EntriesConfirmView{
			Count: t.Entries, Bytes: t.Bytes, Action: "/entries/delete", Hidden: hidden,
			Cancel: a.listURL(bf, nil), What: bf.what(),
		}))
		return
	}
	n, err := bf.b.DeleteMatching(r.Context(), bf.f)
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	freed := t.Bytes
	if n < t.Entries && t.Entries > 0 {
		// Some went between the count and the delete (expired, evicted):
		// say no more than was freed, roughly.
		freed = t.Bytes * n / t.Entries
	}
	http.Redirect(w, r, a.listURL(bf, url.Values{"deleted": {strconv.FormatInt(n, 10)}, "freed": {strconv.FormatInt(freed, 10)}}), http.StatusSeeOther)
}

// handleEntriesRevalidate starts the revalidate job POST /api/revalidate
// starts, and comes back to the list following it.
func (a *API) handleEntriesRevalidate(w http.ResponseWriter, r *http.Request) {
	bf, ok := a.parseBulkForm(w, r)
	if !ok {
		return
	}
	j, err := a.startRevalidate(bf.name, bf.b, bf.f, a.concurrency, bf.query())
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, a.listURL(bf, url.Values{"job": {j.ID()}}), http.StatusSeeOther)
}

// handleEntriesCopy starts the copy job POST /api/export with "to"
// starts, and comes back to the list following it.
func (a *API) handleEntriesCopy(w http.ResponseWriter, r *http.Request) {
	a.startTransferPage(w, r, "copy", a.startCopy)
}

// handleEntriesMove starts a move (a copy that then removes from this
// backend exactly what it copied), and comes back to the list following
// it.
func (a *API) handleEntriesMove(w http.ResponseWriter, r *http.Request) {
	a.startTransferPage(w, r, "move", a.startMove)
}

// startTransferPage reads the bulk bar's selection and target backend,
// starts the job with start, and comes back to the list following it.
func (a *API) startTransferPage(w http.ResponseWriter, r *http.Request, verb string,
	start func(from string, b cache.Backend, to string, f cache.Filter, query string) (*jobs.Job, error)) {
	bf, ok := a.parseBulkForm(w, r)
	if !ok {
		return
	}
	to := bf.form.Get("to")
	if to == "" {
		a.renderError(w, r, http.StatusBadRequest, "No backend to "+verb+" to",
			"Pick a backend next to "+sentence(verb)+" and press it again; nothing was changed.")
		return
	}
	j, err := start(bf.name, bf.b, to, bf.f, bf.query())
	if err != nil {
		a.pageError(w, r, err)
		return
	}
	http.Redirect(w, r, a.listURL(bf, url.Values{"job": {j.ID()}}), http.StatusSeeOther)
}

// handleEntriesExport downloads the selection as NDJSON or HAR, the same
// stream (and redaction) as POST /api/export.
func (a *API) handleEntriesExport(w http.ResponseWriter, r *http.Request) {
	bf, ok := a.parseBulkForm(w, r)
	if !ok {
		return
	}
	format := transfer.NDJSON
	if s := bf.form.Get("format"); s != "" {
		var err error
		if format, err = transfer.ParseFormat(s); err != nil {
			a.renderError(w, r, http.StatusBadRequest, "Unknown export format "+quote(s), "Use the Export NDJSON or Export HAR button; nothing was changed.")
			return
		}
	}
	a.streamExport(w, r, bf.name, bf.b, bf.f, format, a.pageError)
}
