package handlers

import (
	"github.com/go-chi/chi/v5"
)

// Mount adds every admin route under /api to r. This is the whole route
// table; openapi.json documents each route and a test keeps the two equal.
func (a *API) Mount(r chi.Router) {
	r.Route("/api", func(r chi.Router) {
		r.Use(a.authenticate)
		r.NotFound(a.handleNotFound)
		r.MethodNotAllowed(a.handleMethodNotAllowed)

		r.Get("/openapi.json", a.handleOpenAPI)

		r.Get("/entries", a.handleEntryList)
		r.Get("/entries/{key}", a.handleEntryGet)
		r.Get("/entries/{key}/body", a.handleEntryBody)
		r.Delete("/entries/{key}", a.handleEntryDelete)
		r.Post("/entries/{key}/revalidate", a.handleEntryRevalidate)

		r.Post("/delete", a.handleBulkDelete)
		r.Post("/revalidate", a.handleBulkRevalidate)
		r.Post("/export", a.handleExport)
		r.Post("/import", a.handleImport)
		r.Post("/purge-expired", a.handlePurgeExpired)

		r.Get("/jobs", a.handleJobList)
		r.Get("/jobs/{id}", a.handleJobGet)
		r.Delete("/jobs/{id}", a.handleJobCancel)

		r.Get("/stats", a.handleStats)
		r.Get("/upstreams", a.handleUpstreamList)
		r.Post("/upstreams/{name}/bypass", a.handleUpstreamBypass)
		r.Post("/reload", a.handleReload)
		r.Get("/backends", a.handleBackendList)
		r.Get("/explain", a.handleExplain)
	})
}
