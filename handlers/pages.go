package handlers

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/a-h/templ"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/static"
	"github.com/cachegate/cachegate/views"
	"github.com/go-chi/chi/v5"
)

// MountPages adds the admin UI to r: the embedded assets under /static/
// (public: they hold no data) and, behind protectPages, the HTML pages.
// Like Mount, this is the page route table. Paths no route serves get the
// HTML 404 page, so a mistyped address reads as a page, not as JSON.
//
// To add a page: a view-model and component in views/, a handler here (or
// in pages_<name>.go) that builds the model from the same services the
// JSON handler calls and ends in a.render or a.pageError, and one line
// below.
func (a *API) MountPages(r chi.Router) {
	r.Handle(static.Prefix+"*", http.StripPrefix(strings.TrimSuffix(static.Prefix, "/"), static.Handler()))
	r.Group(func(r chi.Router) {
		r.Use(a.protectPages, a.pagesEnabled)
		r.Get("/signin", a.handleSignInPage)
		r.Get("/", a.handleOverviewPage)
		r.Get("/overview/panels", a.handleOverviewPanels)
		r.Get("/backends", a.handleBackendsPage)
		r.Get("/entries/{key}", a.handleEntryPage)
		r.Get("/entries/{key}/body", a.handleEntryBodyPage)
		r.Get("/entries/{key}/image", a.handleEntryImagePage)
		r.Post("/entries/{key}/revalidate", a.handleEntryRevalidatePage)
		r.Post("/entries/{key}/delete", a.handleEntryDeletePage)
		r.Get("/jobs", a.handleJobsPage)
		r.Get("/jobs/{id}", a.handleJobPage)
		r.Get("/jobs/{id}/card", a.handleJobCard)
		r.Post("/jobs/{id}/cancel", a.handleJobCancelPage)
		r.Get("/entries", a.handleEntriesPage)
		r.Post("/entries/delete", a.handleEntriesDelete)
		r.Post("/entries/revalidate", a.handleEntriesRevalidate)
		r.Post("/entries/export", a.handleEntriesExport)
		r.Post("/entries/copy", a.handleEntriesCopy)
		r.Post("/entries/move", a.handleEntriesMove)
		r.Get("/upstreams", a.handleUpstreamsPage)
		r.Get("/explain", a.handleExplainPage)
	})
	r.NotFound(a.protectPages(a.pagesEnabled(http.HandlerFunc(a.handlePageNotFound))).ServeHTTP)
	r.MethodNotAllowed(a.protectPages(a.pagesEnabled(http.HandlerFunc(a.handlePageMethodNotAllowed))).ServeHTTP)
}

// pagesEnabled answers every page with a readable 403 when the admin side
// is off (the server listens beyond loopback without a token), the same
// rule the JSON API follows.
func (a *API) pagesEnabled(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.disabled != "" {
			a.renderBare(w, r, views.ErrorView{Status: http.StatusForbidden, Title: "The admin side is off",
				Hint: a.disabled})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// render writes c as a page with status. It renders into a buffer first:
// a component that fails halfway becomes the error page rather than half a
// page with a 200.
func (a *API) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		a.log.Error("render page", "path", r.URL.Path, "err", err)
		a.renderBare(w, r, views.ErrorView{Status: http.StatusInternalServerError, Title: "This page could not be shown",
			Hint: "Something went wrong while drawing it; the server log has the details. Reload to try again."})
		return
	}
	writeHTML(w, status, buf.Bytes())
}

// renderBare writes an error page without the header: for answers that
// must not count the backends (the admin side is off) or whose own
// rendering failed.
func (a *API) renderBare(w http.ResponseWriter, r *http.Request, e views.ErrorView) {
	var buf bytes.Buffer
	if err := views.BareErrorPage(e).Render(r.Context(), &buf); err != nil {
		a.log.Error("render error page", "path", r.URL.Path, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(e.Status)
		_, _ = w.Write([]byte(e.Title + "\n"))
		return
	}
	writeHTML(w, e.Status, buf.Bytes())
}

// writeHTML answers body as an HTML page. Pages show live data: never
// cached.
func writeHTML(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// renderError is the one place a page answers with an error: the normal
// frame (so the user can navigate on) around the status, a title saying
// what went wrong and a hint saying what to do.
func (a *API) renderError(w http.ResponseWriter, r *http.Request, status int, title, hint string) {
	l := a.layout(r, http.StatusText(status), "")
	a.render(w, r, status, views.ErrorPage(l, views.ErrorView{Status: status, Title: title, Hint: hint}))
}

// pageError answers err as an error page, classified the way writeError
// classifies it for the JSON API (and logged there when internal).
func (a *API) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := a.classify(r, err)
	title, hint := body.Error, pageHint(status)
	if status == http.StatusInternalServerError {
		title = "Something went wrong on the server"
	}
	a.renderError(w, r, status, sentence(title), hint)
}

// pageHint says what to do after an error with this status.
func pageHint(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "Check the address or the form values and try again."
	case http.StatusNotFound:
		return "It may have been deleted, or the link is out of date."
	case http.StatusConflict:
		return "Wait for the running job to finish, or cancel it on the Jobs page."
	case http.StatusServiceUnavailable:
		return "Try again in a moment."
	}
	return "Nothing was changed. The server log has the details; reload to try again."
}

// sentence makes an error message read as a title: capitalised.
func sentence(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// handlePageNotFound answers a path no page serves.
func (a *API) handlePageNotFound(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusNotFound, "There is no page at "+r.URL.Path,
		"Check the address, or pick a page from the navigation above.")
}

// handlePageMethodNotAllowed answers a page asked for with a method it
// does not take (a form posted to a page that only shows).
func (a *API) handlePageMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusMethodNotAllowed, "The page at "+r.URL.Path+" does not take "+r.Method+" requests",
		"Open it with a link instead; nothing was changed.")
}

// pageQuery checks a page's query the way queryParams does for the API
// (accepted, plus "backend" always) and resolves ?backend= (the default
// backend when absent). On a bad query or an unknown backend it answers
// the error page itself and returns ok false; the handler just returns.
func (a *API) pageQuery(w http.ResponseWriter, r *http.Request, accepted ...string) (v url.Values, name string, b cache.Backend, ok bool) {
	v, err := queryParams(r, append([]string{"backend"}, accepted...)...)
	if err != nil {
		a.pageError(w, r, err)
		return nil, "", nil, false
	}
	name, b, err = a.backend(v.Get("backend"))
	if err != nil {
		a.renderError(w, r, http.StatusNotFound, "No backend named "+quote(v.Get("backend")),
			"Configured backends: "+strings.Join(a.names, ", ")+". Pick one in the header.")
		return nil, "", nil, false
	}
	return v, name, b, true
}

// layout builds the frame of a page: the backend picker with every
// backend's size, the navigation and the signed-in state. An unknown
// ?backend= shows as the default (the page itself reports it).
func (a *API) layout(r *http.Request, title, active string) views.Layout {
	q := r.URL.Query()
	current := q.Get("backend")
	if _, ok := a.backends[current]; !ok {
		current = cache.DefaultBackendName
	}
	q.Del("backend")
	signedIn, tokenRequired := a.signedIn(r)
	l := views.Layout{
		Title: title, Active: active, Path: r.URL.Path, Query: q,
		Backend: current, DefaultBackend: cache.DefaultBackendName,
		CSRFToken: a.csrfToken(r),
		Auth:      views.Auth{TokenRequired: tokenRequired, SignedIn: signedIn},
	}
	totals := a.countBackends(r.Context())
	for _, name := range a.names {
		t := totals[a.backends[name]]
		c := views.BackendChoice{Name: name, Kind: backendKind(a.dsns[name]), Entries: t.Entries, Bytes: t.Bytes}
		if t.err != nil {
			c.Err = t.err.Error()
		}
		l.Backends = append(l.Backends, c)
	}
	return l
}

// counted is a backend's size, or why it could not be counted.
type counted struct {
	cache.Totals
	err error
}

// countBackends counts every backend once (one store may have several
// names), each bounded by healthTimeout so a backend that hangs cannot
// hang the page.
func (a *API) countBackends(ctx context.Context) map[cache.Backend]counted {
	out := make(map[cache.Backend]counted, len(a.canonical))
	for b := range a.canonical {
		cctx, cancel := context.WithTimeout(ctx, healthTimeout)
		t, err := b.Count(cctx, cache.Filter{})
		cancel()
		out[b] = counted{Totals: t, err: err}
	}
	return out
}

// backendKind names the kind of store a DSN opens, from its scheme.
func backendKind(dsn string) string {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return "unknown"
	}
	switch scheme = strings.ToLower(scheme); scheme {
	case "mongodb", "mongodb+srv":
		return "mongodb"
	}
	return scheme
}

// signInErrors are the messages for the codes POST /signin sends back in
// ?error=.
var signInErrors = map[string]string{
	"invalid_token": "That token is not the admin token.",
	"rate_limited":  "Too many failed sign-ins; wait a minute.",
}

// handleSignInPage shows the sign-in form. Someone who needs no token, or
// is signed in already, goes straight on to next.
func (a *API) handleSignInPage(w http.ResponseWriter, r *http.Request) {
	v, err := queryParams(r, "next", "error", "signed_out")
	if err != nil {
		a.renderBare(w, r, views.ErrorView{Status: http.StatusBadRequest, Title: sentence(err.Error()),
			Hint: "Open /signin without parameters to sign in."})
		return
	}
	next := localPath(v.Get("next"))
	signedIn, tokenRequired := a.signedIn(r)
	if !tokenRequired || (signedIn && v.Get("signed_out") == "") {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	view := views.SignInView{CSRFToken: a.csrfToken(r), Next: next, SignedOut: v.Get("signed_out") != ""}
	if code := v.Get("error"); code != "" {
		msg, ok := signInErrors[code]
		if !ok {
			msg = "Signing in did not work; try again."
		}
		view.Error = msg
	}
	a.render(w, r, http.StatusOK, views.SignIn(view))
}

// handleBackendsPage shows every backend with its DSN (credentials
// masked), size and health, as GET /api/backends reports them.
func (a *API) handleBackendsPage(w http.ResponseWriter, r *http.Request) {
	if _, _, _, ok := a.pageQuery(w, r); !ok {
		return
	}
	rows := make([]views.BackendRow, 0, len(a.names))
	for _, name := range a.names {
		b := a.backends[name]
		row := views.BackendRow{Name: name, Kind: backendKind(a.dsns[name]), DSN: a.dsns[name], Healthy: true}
		if c := a.canonical[b]; c != name {
			row.SameAs = c
		}
		if s, ok := b.(cache.Sizer); ok {
			row.MaxBytes = s.MaxBytes()
		}
		_, row.CanVacuum = b.(cache.Vacuumer)
		if err := checkBackend(r.Context(), b, &row); err != nil {
			if r.Context().Err() != nil {
				return // the client went away
			}
			row.Healthy, row.Err = false, healthMessage(err)
		}
		rows = append(rows, row)
	}
	a.render(w, r, http.StatusOK, views.Backends(a.layout(r, "Backends", "/backends"), rows))
}

// checkBackend pings b (when it can be pinged) and counts it into row,
// within healthTimeout.
func checkBackend(ctx context.Context, b cache.Backend, row *views.BackendRow) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	if p, ok := b.(cache.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			return err
		}
	}
	t, err := b.Count(ctx, cache.Filter{})
	if err != nil {
		return err
	}
	row.Entries, row.Bytes = t.Entries, t.Bytes
	return nil
}

// healthMessage is what the Backends page says about a failed check.
func healthMessage(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer within " + healthTimeout.String()
	}
	return err.Error()
}
