package gateway

import (
	"net/http"
	"runtime/debug"
	"time"
)

// Panic recovery for /fetch/ lives here, for both doors: ServeHTTP
// answers a panic with a JSON 500, Lookup declines (its caller then hands
// the request to ServeHTTP), and Done logs one. No panic reaches a client
// as a dropped connection or a stack trace, and nothing half-written is
// ever stored: entries are stored only once their body is complete.

// recoverServe ends a ServeHTTP that panicked. v is what recover
// returned; written reports whether the response's head has gone out.
// http.ErrAbortHandler is the deliberate way to cut a response and
// passes through; so does any panic after the head went out, as
// http.ErrAbortHandler, because a JSON error appended to a half-sent body
// would read as the body's end.
func (g *Gateway) recoverServe(w http.ResponseWriter, r *http.Request, start time.Time, id string, v any, written bool) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	g.logPanic(r, v)
	if written {
		panic(http.ErrAbortHandler)
	}
	g.refuse(w, r, start, id, http.StatusInternalServerError, "internal", "internal error", nil)
}

func (g *Gateway) recoverLookup(r *http.Request) {
	if v := recover(); v != nil {
		g.logPanic(r, v)
	}
}

// recoverDone ends a Done that panicked: the answer is the client's
// already, only its counting failed.
func (g *Gateway) recoverDone(d *answered) {
	if v := recover(); v != nil {
		g.logPanic(d.req, v)
		*d = answered{}
	}
}

// logPanic logs a panic with its stack. The path goes without its query,
// which could carry a secret.
func (g *Gateway) logPanic(r *http.Request, v any) {
	g.log.Error("panic", "method", r.Method, "path", r.URL.EscapedPath(), "panic", v, "stack", string(debug.Stack()))
}
