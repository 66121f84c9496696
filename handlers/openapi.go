package handlers

import (
	_ "embed"
	"net/http"
)

// openAPI is the hand-written OpenAPI 3 description of every route in
// routes.go; TestOpenAPIMatchesRoutes keeps the two in step.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return openAPI }

// handleOpenAPI serves the OpenAPI document.
func (a *API) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
