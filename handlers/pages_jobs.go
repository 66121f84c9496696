package handlers

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/jobs"
	"github.com/cachegate/cachegate/transfer"
	"github.com/cachegate/cachegate/views"
	"github.com/dustin/go-humanize"
	"github.com/go-chi/chi/v5"
)

// Issues a job shows: a few on the Jobs list, so one job with a hundred
// failures does not push the others off the page; all the registry keeps
// (jobs.MaxErrors) on the job's own page.
const (
	listIssues   = 3
	detailIssues = jobs.MaxErrors
)

// handleJobsPage lists every job the registry keeps, newest first, as
// GET /api/jobs does.
func (a *API) handleJobsPage(w http.ResponseWriter, r *http.Request) {
	v, _, _, ok := a.pageQuery(w, r, "cancelled")
	if !ok {
		return
	}
	now := a.now()
	view := views.JobsView{Now: now, Keep: roundDuration(a.jobs.Keep())}
	for _, s := range a.jobs.List() {
		view.Jobs = append(view.Jobs, a.jobRow(s, now, listIssues))
	}
	if id := v.Get("cancelled"); id != "" {
		view.Notice = cancelNotice(id)
	}
	a.render(w, r, http.StatusOK, views.Jobs(a.layout(r, "Jobs", "/jobs"), view))
}

// handleJobPage shows one job in full. ?started=1 comes from the page
// that started it; ?cancelled=1 from the cancel form.
func (a *API) handleJobPage(w http.ResponseWriter, r *http.Request) {
	v, _, _, ok := a.pageQuery(w, r, "started", "cancelled")
	if !ok {
		return
	}
	j, ok := a.pageJob(w, r)
	if !ok {
		return
	}
	now := a.now()
	row := a.jobRow(j.Snapshot(), now, detailIssues)
	view := views.JobDetailView{Job: row, Now: now, Started: v.Get("started") != "" && row.Running()}
	if v.Get("cancelled") != "" {
		view.Notice = cancelNotice(row.ID)
	}
	a.render(w, r, http.StatusOK, views.JobDetail(a.layout(r, views.JobTitle(row), "/jobs"), view))
}

// handleJobCard answers one job's card alone, for jobs.js to swap in
// when a job ends or appears; ?detail=true is the job page's version.
func (a *API) handleJobCard(w http.ResponseWriter, r *http.Request) {
	v, _, _, ok := a.pageQuery(w, r, "detail")
	if !ok {
		return
	}
	j, ok := a.pageJob(w, r)
	if !ok {
		return
	}
	detail := v.Get("detail") == "true"
	max := listIssues
	if detail {
		max = detailIssues
	}
	// A fragment has no header: its links and form need only the backend
	// and the CSRF token, not the backends counted as a.layout does.
	l := views.Layout{Backend: cache.DefaultBackendName, DefaultBackend: cache.DefaultBackendName, CSRFToken: a.csrfToken(r)}
	if name := v.Get("backend"); a.isBackend(name) {
		l.Backend = name
	}
	now := a.now()
	a.render(w, r, http.StatusOK, views.JobCard(l, a.jobRow(j.Snapshot(), now, max), now, detail))
}

// handleJobCancelPage is the Cancel button: the same cancel as
// DELETE /api/jobs/{id}, then back to the page the form was on. A job that
// ended meanwhile is a readable page saying how it ended; nothing changes.
func (a *API) handleJobCancelPage(w http.ResponseWriter, r *http.Request) {
	j, err := a.jobs.Cancel(chi.URLParam(r, "id"))
	switch {
	case errors.Is(err, jobs.ErrFinished):
		s := j.Snapshot()
		a.renderError(w, r, http.StatusConflict, "This job already ended: it is "+string(s.State),
			"There is nothing left to cancel; its outcome is on its page, /jobs/"+s.ID+".")
		return
	case errors.Is(err, jobs.ErrNotFound):
		a.jobNotFound(w, r)
		return
	case err != nil:
		a.pageError(w, r, err)
		return
	}
	// Most jobs stop within moments of a cancel: waiting for that (a
	// little, bounded) lets the page we return to show it cancelled, which
	// matters without scripts, where nothing updates it later.
	t := time.NewTimer(cancelWait)
	select {
	case <-j.Done():
	case <-t.C:
	case <-r.Context().Done():
	}
	t.Stop()
	if r.PostFormValue("from") == "list" {
		http.Redirect(w, r, "/jobs?cancelled="+url.QueryEscape(j.ID()), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/jobs/"+url.PathEscape(j.ID())+"?cancelled=1", http.StatusSeeOther)
}

// cancelWait bounds how long the Cancel button waits for the job to stop
// before showing the page again.
const cancelWait = 2 * time.Second

// pageJob looks up the job of the path's {id}, answering the 404 page
// when the registry does not know it.
func (a *API) pageJob(w http.ResponseWriter, r *http.Request) (*jobs.Job, bool) {
	j, err := a.jobs.Get(chi.URLParam(r, "id"))
	if err != nil {
		a.jobNotFound(w, r)
		return nil, false
	}
	return j, true
}

func (a *API) jobNotFound(w http.ResponseWriter, r *http.Request) {
	a.renderError(w, r, http.StatusNotFound, "There is no job "+quote(chi.URLParam(r, "id")),
		"Finished jobs are kept for "+roundDuration(a.jobs.Keep())+" and forgotten when the server restarts. The Jobs page lists those it knows.")
}

func cancelNotice(id string) string {
	return "Cancelling job " + id + ": it stops once the entries in flight are handled. What it did until then stays done."
}

// jobRow turns a snapshot into what the Jobs pages show, judged at now:
// the rate over the job's whole run, the time left at that rate, its
// result as counts, and at most maxIssues of its failures and skips.
func (a *API) jobRow(s jobs.Snapshot, now time.Time, maxIssues int) views.JobRow {
	row := views.JobRow{
		ID: s.ID, Kind: s.Kind, Target: s.Target, State: string(s.State),
		Done: s.Done, Total: s.Total, Failed: s.Failed, Skipped: s.Skipped,
		Started: s.Started, Error: s.Error,
	}
	end := now
	if s.Finished != nil {
		row.Finished, end = *s.Finished, *s.Finished
	}
	processed := s.Done + s.Failed + s.Skipped
	switch {
	case s.Total > 0:
		row.Percent = math.Min(100, float64(processed)*100/float64(s.Total))
	case s.State == jobs.Running:
		row.Percent = -1 // the total is not known yet
	default:
		row.Percent = 100
	}
	if secs := end.Sub(s.Started).Seconds(); secs >= 0.2 && processed > 0 {
		rate := float64(processed) / secs
		row.Rate = rateText(rate)
		if s.State == jobs.Running && s.Total > processed {
			row.ETA = humanDuration(time.Duration(float64(s.Total-processed) / rate * float64(time.Second)))
		}
	}
	row.Outcomes = outcomes(s)
	for _, e := range s.Errors {
		if len(row.Issues) == maxIssues {
			break
		}
		is := views.JobIssue{Key: e.Key, Line: e.Line, Skipped: e.Outcome == jobs.OutcomeSkipped, Reason: e.Error}
		if e.Key != "" && cache.ValidKey(e.Key) && a.isBackend(s.Target) {
			is.EntryURL = backendLink("/entries/"+e.Key, s.Target)
		}
		row.Issues = append(row.Issues, is)
	}
	row.MoreIssues = max(0, s.Failed+s.Skipped-int64(len(row.Issues)))
	row.ResultURL, row.ResultLabel = a.jobResult(s)
	return row
}

// jobResult is where a job's result can be seen: the entries a copy
// wrote, the backend a revalidation or import worked on. An export's
// result was its download.
func (a *API) jobResult(s jobs.Snapshot) (string, string) {
	switch s.Kind {
	case "copy", "move":
		if _, to, ok := strings.Cut(s.Target, " → "); ok && a.isBackend(to) {
			link := backendLink("/entries", to)
			if q, err := url.ParseQuery(s.Query); err == nil && len(q) > 0 {
				if to != cache.DefaultBackendName {
					q.Set("backend", to)
				}
				link = "/entries?" + q.Encode()
			}
			return link, "Browse what it wrote to " + to
		}
	case "revalidate", "delete":
		if a.isBackend(s.Target) && s.Query != "" {
			q, err := url.ParseQuery(s.Query)
			if err == nil {
				if s.Target != cache.DefaultBackendName {
					q.Set("backend", s.Target)
				}
				return "/entries?" + q.Encode(), "Browse the entries it worked on"
			}
		}
		fallthrough
	case "import":
		if a.isBackend(s.Target) {
			return backendLink("/entries", s.Target), "Browse the entries of " + s.Target
		}
	}
	return "", ""
}

func (a *API) isBackend(name string) bool {
	_, ok := a.backends[name]
	return ok
}

// backendLink is path on backend name, leaving the default out as the
// pages' links do.
func backendLink(path, name string) string {
	if name == cache.DefaultBackendName {
		return path
	}
	return path + "?backend=" + url.QueryEscape(name)
}

// outcomes lists a job's result as counts. The results the handlers
// start jobs with are named; anything else shows its numeric fields.
func outcomes(s jobs.Snapshot) []views.Outcome {
	count := func(name string, n int64, kind string) views.Outcome {
		if n == 0 {
			kind = ""
		}
		return views.Outcome{Name: name, Value: views.Count(n), Kind: kind}
	}
	switch res := s.Result.(type) {
	case nil:
		return nil
	case RevalidateResult:
		return []views.Outcome{
			count("not modified", res.NotModified, "ok"),
			count("updated", res.Updated, "info"),
			count("gone", res.Gone, "warn"),
			count("error", res.Error, "bad"),
			count("skipped", res.Skipped, "warn"),
		}
	case transfer.Result:
		verb := map[string]string{"copy": "copied", "export": "exported", "import": "imported"}[s.Kind]
		if verb == "" {
			verb = "done"
		}
		out := []views.Outcome{
			count(verb, res.Done, "ok"),
			count("failed", res.Failed, "bad"),
			{Name: "bytes", Value: views.Bytes(res.Bytes)},
		}
		if res.Elapsed > 0 {
			out = append(out, views.Outcome{Name: "took", Value: humanDuration(res.Elapsed)})
		}
		return out
	}
	return genericOutcomes(s.Result)
}

// genericOutcomes shows the numbers of a result of a kind this page does
// not know, by their JSON names: a job added later still reads.
func genericOutcomes(result any) []views.Outcome {
	b, err := json.Marshal(result)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if _, ok := v.(float64); ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]views.Outcome, 0, len(keys))
	for _, k := range keys {
		out = append(out, views.Outcome{Name: strings.ReplaceAll(k, "_", " "), Value: humanize.Commaf(m[k].(float64))})
	}
	return out
}

// rateText is entries per second, with a decimal while it is small.
func rateText(r float64) string {
	if r < 10 {
		return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
	}
	return humanize.Comma(int64(math.Round(r))) + "/s"
}

// humanDuration says d in the two largest units, as live.js does: "45 s",
// "3 min 20 s", "2 h 5 min", "1 d 3 h".
func humanDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return strconv.FormatInt(s, 10) + " s"
	case s < 3600:
		return strconv.FormatInt(s/60, 10) + " min " + strconv.FormatInt(s%60, 10) + " s"
	case s < 86400:
		return strconv.FormatInt(s/3600, 10) + " h " + strconv.FormatInt(s%3600/60, 10) + " min"
	}
	return strconv.FormatInt(s/86400, 10) + " d " + strconv.FormatInt(s%86400/3600, 10) + " h"
}

// roundDuration is humanDuration without a trailing zero unit: "1 h".
func roundDuration(d time.Duration) string {
	s := humanDuration(d)
	for _, zero := range []string{" 0 s", " 0 min", " 0 h"} {
		s = strings.TrimSuffix(s, zero)
	}
	return s
}

// selectionQuery is the entries listing's query for what s selects (its
// filter, whose names are the listing's), for the link from a job to the
// entries it worked on; "" when s names keys, which no listing query
// selects, or no filter.
func selectionQuery(s Selection) string {
	if len(s.Keys) > 0 {
		return ""
	}
	v := url.Values{}
	for name, raw := range s.Filter {
		if str, err := scalar(raw); err == nil && strings.TrimSpace(str) != "" {
			v.Set(name, strings.TrimSpace(str))
		}
	}
	return v.Encode()
}
