package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// backendJSON describes a configured backend.
type backendJSON struct {
	Name string `json:"name"`
	DSN  string `json:"dsn"` // password redacted
	// SameAs names another backend that is the same store (a DSN named
	// twice is opened once).
	SameAs   string `json:"same_as,omitempty"`
	Entries  int64  `json:"entries"`
	Bytes    int64  `json:"bytes"`
	MaxBytes int64  `json:"max_bytes,omitempty"`
	// Healthy is false when its Ping or Count failed; Error says why.
	Healthy   bool   `json:"healthy"`
	Error     string `json:"error,omitempty"`
	CanVacuum bool   `json:"can_vacuum"`
}

// healthTimeout bounds the health check of one backend.
const healthTimeout = 2 * time.Second

// handleBackendList answers every configured backend with its size and
// health.
func (a *API) handleBackendList(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	out := make([]backendJSON, 0, len(a.names))
	for _, name := range a.names {
		b := a.backends[name]
		j := backendJSON{Name: name, DSN: a.dsns[name], Healthy: true}
		if c := a.canonical[b]; c != name {
			j.SameAs = c
		}
		if s, ok := b.(cache.Sizer); ok {
			j.MaxBytes = s.MaxBytes()
		}
		_, j.CanVacuum = b.(cache.Vacuumer)
		ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
		if p, ok := b.(cache.Pinger); ok {
			if err := p.Ping(ctx); err != nil {
				j.Healthy, j.Error = false, err.Error()
			}
		}
		if j.Healthy {
			t, err := b.Count(ctx, cache.Filter{})
			if err != nil {
				j.Healthy, j.Error = false, err.Error()
			}
			j.Entries, j.Bytes = t.Entries, t.Bytes
		}
		cancel()
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"backends": out})
}

// handlePurgeExpired removes the stale entries of a backend and, with
// vacuum=true on a backend that can, gives the space back to the system.
func (a *API) handlePurgeExpired(w http.ResponseWriter, r *http.Request) {
	v, name, b, err := a.queryBackend(r, "backend", "vacuum")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	vacuum, err := parseBool(v, "vacuum", false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	vac, canVacuum := b.(cache.Vacuumer)
	if vacuum && !canVacuum {
		a.writeError(w, r, badRequest("cannot_vacuum", "backend "+quote(name)+" has nothing to vacuum (only SQLite does); leave out vacuum"))
		return
	}
	n, err := b.DeleteExpired(r.Context(), time.Now())
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if vacuum {
		if err := vac.Vacuum(r.Context()); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"backend": name, "deleted": n, "vacuumed": vacuum})
}
