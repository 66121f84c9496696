package handlers

import "net/http"

// The page side of the guard, for package handlers_test: the real pages
// come from the ui branch, so the tests put a small handler of their own
// behind it.

// GuardPages is protectPages.
func (a *API) GuardPages(next http.Handler) http.Handler { return a.protectPages(next) }

// GuardCSRFToken is csrfToken.
func (a *API) GuardCSRFToken(r *http.Request) string { return a.csrfToken(r) }

// GuardSignedIn is signedIn.
func (a *API) GuardSignedIn(r *http.Request) (signedIn, tokenRequired bool) { return a.signedIn(r) }
