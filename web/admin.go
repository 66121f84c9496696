package web

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// mountAdmin mounts the admin API and dashboard. Until they exist, /api/
// answers a JSON 404 so clients get an error they can read.
func (s *Server) mountAdmin(r chi.Router) {
	r.Handle("/api/*", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.adminOff != "" {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": s.adminOff, "code": "admin_disabled"})
			return
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such admin endpoint", "code": "not_found"})
	}))
}
