package handlers

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// authenticate guards every admin route. A disabled API answers 403 with
// the reason; with a token set, requests need "Authorization: Bearer
// <token>", compared in constant time.
// Protect guards another admin handler (the profiler, the dashboard) with
// the same token and off-switch as /api.
func (a *API) Protect(next http.Handler) http.Handler { return a.authenticate(next) }

func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.disabled != "" {
			a.writeError(w, r, &Error{Status: http.StatusForbidden, Code: "admin_disabled", Message: a.disabled})
			return
		}
		if a.token == "" {
			next.ServeHTTP(w, r)
			return
		}
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cachegate admin"`)
			a.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
				Message: "the admin API needs an Authorization: Bearer <admin token> header"})
			return
		}
		if !tokenEqual(strings.TrimSpace(token), a.token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cachegate admin", error="invalid_token"`)
			a.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "invalid_token",
				Message: "the bearer token is not the admin token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenEqual compares in constant time. Hashing first makes the time
// independent of the lengths too.
func tokenEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}
