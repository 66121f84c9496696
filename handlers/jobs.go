package handlers

import (
	"net/http"

	"github.com/cachegate/cachegate/jobs"
	"github.com/go-chi/chi/v5"
)

// writeJob answers a job's snapshot, with its URL in Location.
func writeJob(w http.ResponseWriter, status int, j *jobs.Job) {
	w.Header().Set("Location", "/api/jobs/"+j.ID())
	writeJSON(w, status, j.Snapshot())
}

// handleJobList answers every kept job, newest first.
func (a *API) handleJobList(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": a.jobs.List()})
}

// handleJobGet answers one job's progress.
func (a *API) handleJobGet(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	j, err := a.jobs.Get(chi.URLParam(r, "id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j.Snapshot())
}

// handleJobCancel cancels a running job. The answer is its state at once;
// it reads "cancelled" when the job has stopped.
func (a *API) handleJobCancel(w http.ResponseWriter, r *http.Request) {
	if _, err := queryParams(r); err != nil {
		a.writeError(w, r, err)
		return
	}
	j, err := a.jobs.Cancel(chi.URLParam(r, "id"))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJob(w, http.StatusAccepted, j)
}
