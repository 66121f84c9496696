package handlers

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/jobs"
)

// selector is a bulk request body: a Selection and what else the
// endpoint takes.
type selector interface {
	filter(now time.Time, requireSome bool) (cache.Filter, error)
}

// bulkRequest reads what every bulk endpoint takes: the backend from the
// query, the body into req, and the filter the body selects.
func (a *API) bulkRequest(w http.ResponseWriter, r *http.Request, req selector, requireSome bool) (string, cache.Backend, cache.Filter, error) {
	_, name, b, err := a.queryBackend(r, "backend")
	if err != nil {
		return "", nil, cache.Filter{}, err
	}
	if err := decodeBody(w, r, req); err != nil {
		return "", nil, cache.Filter{}, err
	}
	f, err := req.filter(time.Now(), requireSome)
	return name, b, f, err
}

// deleteRequest is the body of POST /api/delete.
type deleteRequest struct {
	Selection
}

// handleBulkDelete removes the selected entries and answers how many.
func (a *API) handleBulkDelete(w http.ResponseWriter, r *http.Request) {
	var req deleteRequest
	name, b, f, err := a.bulkRequest(w, r, &req, true)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	n, err := b.DeleteMatching(r.Context(), f)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backend": name, "deleted": n})
}

// revalidateRequest is the body of POST /api/revalidate.
type revalidateRequest struct {
	Selection
	// Concurrency lowers the per-upstream bound of concurrent requests
	// below the server's.
	Concurrency int `json:"concurrency,omitempty"`
}

// RevalidateResult counts a bulk revalidation's outcomes; it is the
// result of a finished revalidate job.
type RevalidateResult struct {
	NotModified int64 `json:"not_modified"`
	Updated     int64 `json:"updated"`
	Gone        int64 `json:"gone"`
	Error       int64 `json:"error"`
	// Skipped counts entries whose request could not be sent again as it
	// was; the job's errors hold each one's reason.
	Skipped int64 `json:"skipped"`
}

// revalidatePage is how many entries a bulk revalidation lists at a time.
const revalidatePage = 500

// handleBulkRevalidate starts a job revalidating the selected entries, at
// most a few at a time per upstream. One bulk revalidation runs per
// backend at a time; a second one is refused with 409.
func (a *API) handleBulkRevalidate(w http.ResponseWriter, r *http.Request) {
	var req revalidateRequest
	name, b, f, err := a.bulkRequest(w, r, &req, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	n := a.concurrency
	if req.Concurrency < 0 || req.Concurrency > n {
		a.writeError(w, r, badRequest("bad_body", "concurrency: from 1 to the server's bound of "+itoa(n)+" requests per upstream"))
		return
	}
	if req.Concurrency > 0 {
		n = req.Concurrency
	}
	j, err := a.startRevalidate(name, b, f, n, selectionQuery(req.Selection))
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	writeJob(w, http.StatusAccepted, j)
}

// startRevalidate starts the job revalidating b's entries matching f, n at
// a time per upstream: the one service behind POST /api/revalidate and the
// Entries page's Revalidate button. A revalidation already running on b
// makes it a 409.
// query is the listing query of what the job selects (see selectionQuery),
// for the job's link to its entries.
func (a *API) startRevalidate(name string, b cache.Backend, f cache.Filter, n int, query string) (*jobs.Job, error) {
	spec := jobs.Spec{Kind: "revalidate", Target: name, Query: query, Lock: "revalidate/" + a.lockName(b)}
	return a.jobs.Start(context.Background(), spec, func(ctx context.Context, j *jobs.Job) (any, error) {
		return a.revalidateAll(ctx, j, b, f, n)
	})
}

// revalidateAll revalidates every entry of b matching f, n at a time per
// upstream. It lists by URL because a revalidated entry keeps its URL
// while its created and expires times change: a keyset walk in URL order
// neither skips nor repeats entries it updates or removes on the way.
func (a *API) revalidateAll(ctx context.Context, j *jobs.Job, b cache.Backend, f cache.Filter, n int) (RevalidateResult, error) {
	var (
		mu  sync.Mutex // protects res
		res RevalidateResult
	)
	if f.Freshness != cache.AnyFreshness && f.Now.IsZero() {
		f.Now = time.Now()
	}
	totals, err := b.Count(ctx, f)
	if err != nil {
		return res, err
	}
	j.SetTotal(totals.Entries)
	lim := jobs.NewLimiter(n)
	q := cache.Query{Filter: f, Sort: cache.Sort{Field: cache.SortURL}, Limit: revalidatePage}
	var walkErr error
	for walkErr == nil {
		page, err := b.List(ctx, q)
		if err != nil {
			walkErr = err
			break
		}
		for _, e := range page.Entries {
			key := e.Key
			err := lim.Go(ctx, e.Upstream, func() {
				out, err := a.gw.Revalidate(ctx, b, key)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case ctx.Err() != nil && (err != nil || out.Outcome == gateway.OutcomeError):
					// Cut off by the job's cancel, not failed by the
					// entry: it was left as it was, neither done nor
					// failed, so a cancelled job shows no false failures.
				case errors.Is(err, gateway.ErrNotFound):
					// Removed since it was listed: nothing left to do.
					j.Add(1)
				case err != nil:
					res.Error++
					j.Fail(jobs.EntryError{Key: key, Error: err.Error()})
				case out.Outcome == gateway.OutcomeError:
					res.Error++
					j.Fail(jobs.EntryError{Key: key, Error: out.Error})
				case out.Outcome == gateway.OutcomeSkipped:
					res.Skipped++
					j.Skip(jobs.EntryError{Key: key, Error: out.Reason})
				default:
					switch out.Outcome {
					case gateway.OutcomeNotModified:
						res.NotModified++
					case gateway.OutcomeUpdated:
						res.Updated++
					case gateway.OutcomeGone:
						res.Gone++
					}
					j.Add(1)
				}
			})
			if err != nil {
				walkErr = err
				break
			}
		}
		if page.Next == "" {
			break
		}
		q.Cursor = page.Next
	}
	lim.Wait()
	if walkErr == nil {
		walkErr = ctx.Err()
	}
	return res, walkErr
}
