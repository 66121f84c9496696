package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/cachegate/cachegate/gateway"
)

// handleExplain answers what the gateway would do with a request, without
// sending it: ?upstream=NAME&url=PATH[&method=GET][&header=Name: value].
func (a *API) handleExplain(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	if err := checkNames(v, "query parameter", []string{"upstream", "url", "method", "header"}, []string{"header"}); err != nil {
		a.writeError(w, r, err)
		return
	}
	upstream, rawURL := v.Get("upstream"), v.Get("url")
	if upstream == "" || rawURL == "" {
		a.writeError(w, r, badRequest("bad_parameter", "upstream and url are required, e.g. ?upstream=github&url=/repos/golang/go"))
		return
	}
	header := http.Header{}
	for _, h := range v["header"] {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
			a.writeError(w, r, paramError("header", h, `"Name: value", repeatable`))
			return
		}
		header.Add(name, strings.TrimSpace(value))
	}
	x, err := a.gw.Explain(r.Context(), upstream, rawURL, v.Get("method"), header)
	switch {
	case errors.Is(err, gateway.ErrUnknownUpstream):
		a.writeError(w, r, &Error{Status: http.StatusNotFound, Code: "unknown_upstream", Message: err.Error()})
		return
	case err != nil && x.Key == "":
		// Explain fails before it has a key only on the request itself (a
		// URL off the upstream or climbing out of it); after, only in the
		// backend lookup.
		a.writeError(w, r, badRequest("bad_url", err.Error()))
		return
	case err != nil:
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, x)
}
