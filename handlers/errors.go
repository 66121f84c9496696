package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/jobs"
)

// Error is an error with the status and code the API answers it with.
// Handlers return it for problems they detect themselves; writeError maps
// the errors of other packages.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// badRequest returns a 400 Error.
func badRequest(code, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: msg}
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// codes maps the sentinel errors of other packages to statuses and codes.
var codes = []struct {
	err    error
	status int
	code   string
}{
	{cache.ErrInvalid, http.StatusBadRequest, "invalid"},
	{gateway.ErrNotFound, http.StatusNotFound, "entry_not_found"},
	{gateway.ErrUnknownUpstream, http.StatusNotFound, "unknown_upstream"},
	{jobs.ErrNotFound, http.StatusNotFound, "job_not_found"},
	{jobs.ErrConflict, http.StatusConflict, "job_conflict"},
	{jobs.ErrBusy, http.StatusConflict, "too_many_jobs"},
	{jobs.ErrFinished, http.StatusConflict, "job_finished"},
}

// writeError answers err as {"error", "code"} with its status. It is the
// one place errors become responses: an error it does not know is
// internal, logged here with the request, and shown only as "internal
// error" so no backend detail leaks.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body := a.classify(r, err)
	writeJSON(w, status, body)
}

func (a *API) classify(r *http.Request, err error) (int, errorBody) {
	var e *Error
	if errors.As(err, &e) {
		return e.Status, errorBody{Error: e.Message, Code: e.Code}
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			msg := err.Error()
			if c.err == cache.ErrInvalid {
				// "...: invalid" reads as noise to a user.
				msg = strings.TrimSuffix(msg, ": "+cache.ErrInvalid.Error())
			}
			return c.status, errorBody{Error: msg, Code: c.code}
		}
	}
	if r.Context().Err() != nil && errors.Is(err, context.Canceled) {
		// The client went away; nobody reads this answer.
		a.log.Debug("admin request cancelled", "method", r.Method, "path", r.URL.Path)
		return http.StatusServiceUnavailable, errorBody{Error: "request cancelled", Code: "cancelled"}
	}
	a.log.Error("admin request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return http.StatusInternalServerError, errorBody{Error: "internal error", Code: "internal_error"}
}

func quote(s string) string { return strconv.Quote(s) }

// handleNotFound answers paths under /api/ that no route serves.
func (a *API) handleNotFound(w http.ResponseWriter, r *http.Request) {
	a.writeError(w, r, &Error{Status: http.StatusNotFound, Code: "not_found",
		Message: "no admin endpoint " + r.Method + " " + r.URL.Path + "; see /api/openapi.json"})
}

// handleMethodNotAllowed answers a known path with a method it lacks.
func (a *API) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	a.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: "method " + r.Method + " is not allowed on " + r.URL.Path + " (allowed: " + w.Header().Get("Allow") + ")"})
}
