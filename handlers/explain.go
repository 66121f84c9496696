package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/cachegate/cachegate/gateway"
)

// handleExplain answers what the gateway would do with a request, without
// sending it: ?url=URL[&upstream=NAME][&method=GET][&header=Name: value].
// Without upstream, the URL names it (see gateway.ResolveURL).
func (a *API) handleExplain(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	if err := checkNames(v, "query parameter", []string{"upstream", "url", "method", "header"}, []string{"header"}); err != nil {
		a.writeError(w, r, err)
		return
	}
	if v.Get("url") == "" {
		a.writeError(w, r, badRequest("bad_parameter", "url is required, e.g. ?upstream=github&url=/repos/golang/go or ?url=/fetch/github/repos/golang/go"))
		return
	}
	header := http.Header{}
	for _, h := range v["header"] {
		name, value, ok := cutHeader(h)
		if !ok {
			a.writeError(w, r, paramError("header", h, `"Name: value", repeatable`))
			return
		}
		header.Add(name, value)
	}
	x, err := a.explain(r.Context(), v.Get("upstream"), v.Get("url"), v.Get("method"), header)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}

// explain runs the gateway's explanation for the API and the Explain
// page alike, finding the upstream from rawURL when none is named, and
// classifies its errors: 404 for an unknown upstream, 400 for a URL no
// upstream takes.
func (a *API) explain(ctx context.Context, upstream, rawURL, method string, header http.Header) (gateway.Explanation, error) {
	name, u, err := a.gw.ResolveURL(rawURL)
	switch {
	case upstream == "" && err != nil:
		return gateway.Explanation{}, badRequest("no_upstream", err.Error())
	case upstream == "" || name == upstream:
		// A gateway URL (http://gateway/fetch/NAME/...) reads as its
		// /fetch/ path; a named upstream keeps any other URL as given.
		upstream, rawURL = name, u
	}
	x, err := a.gw.Explain(ctx, upstream, rawURL, method, header)
	switch {
	case errors.Is(err, gateway.ErrUnknownUpstream):
		return x, &Error{Status: http.StatusNotFound, Code: "unknown_upstream", Message: err.Error()}
	case err != nil && x.Key == "":
		// Explain fails before it has a key only on the request itself (a
		// URL off the upstream or climbing out of it); after, only in the
		// backend lookup.
		return x, badRequest("bad_url", err.Error())
	}
	return x, err
}

// cutHeader splits "Name: value" into a header name and its value.
func cutHeader(line string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(line, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return "", "", false
	}
	return name, strings.TrimSpace(value), true
}
