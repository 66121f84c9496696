package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/jobs"
	"github.com/cachegate/cachegate/transfer"
)

func itoa(n int) string { return strconv.Itoa(n) }

// exportRequest is the body of POST /api/export.
type exportRequest struct {
	Selection
	// Format is ndjson (default) or har, for a download.
	Format string `json:"format,omitempty"`
	// To names a backend to copy into instead of downloading.
	To string `json:"to,omitempty"`
}

// handleExport exports the selected entries: without "to" it streams them
// as an NDJSON or HAR download (a job while it runs, named in
// X-Cachegate-Job, so it shows progress and can be cancelled); with "to"
// it starts a job copying them into that backend and answers 202.
func (a *API) handleExport(w http.ResponseWriter, r *http.Request) {
	var req exportRequest
	name, b, f, err := a.bulkRequest(w, r, &req, false)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	if req.To != "" {
		if req.Format != "" {
			a.writeError(w, r, badRequest("bad_body", "format applies to downloads; a copy into a backend (to) takes none"))
			return
		}
		j, err := a.startCopy(name, b, req.To, f, selectionQuery(req.Selection))
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		writeJob(w, http.StatusAccepted, j)
		return
	}
	format := transfer.NDJSON
	if req.Format != "" {
		if format, err = transfer.ParseFormat(req.Format); err != nil {
			a.writeError(w, r, badRequest("bad_body", "format: "+err.Error()))
			return
		}
	}
	a.streamExport(w, r, name, b, f, format, a.writeError)
}

// startCopy starts a job copying b's entries matching f into the backend
// named to: the one service behind POST /api/export with "to" and the
// Entries page's Copy button. query is the listing query of what it
// selects, as for startRevalidate.
func (a *API) startCopy(from string, b cache.Backend, to string, f cache.Filter, query string) (*jobs.Job, error) {
	return a.startTransfer("copy", from, b, to, f, query, func(ctx context.Context, dst cache.Backend, opts transfer.CopyOptions) (any, []transfer.EntryError, error) {
		res, err := transfer.Copy(ctx, b, dst, opts)
		return res, res.Errors, err
	})
}

// startMove starts a job moving b's entries matching f into the backend
// named to: a copy that then removes from b exactly the versions it
// copied (transfer.Move). The Entries page's Move button.
func (a *API) startMove(from string, b cache.Backend, to string, f cache.Filter, query string) (*jobs.Job, error) {
	return a.startTransfer("move", from, b, to, f, query, func(ctx context.Context, dst cache.Backend, opts transfer.CopyOptions) (any, []transfer.EntryError, error) {
		res, err := transfer.Move(ctx, b, dst, opts)
		return res, res.Errors, err
	})
}

// startTransfer starts a job of kind that runs do from b into the backend
// named to, holding the destination's lock (no import, copy or move into
// it runs at the same time).
func (a *API) startTransfer(kind, from string, b cache.Backend, to string, f cache.Filter, query string,
	do func(ctx context.Context, dst cache.Backend, opts transfer.CopyOptions) (any, []transfer.EntryError, error)) (*jobs.Job, error) {
	to, dst, err := a.backend(to)
	if err != nil {
		return nil, err
	}
	if dst == b {
		return nil, badRequest("same_backend", fmt.Sprintf("backends %q and %q are the same store: nothing to %s", from, to, kind))
	}
	spec := jobs.Spec{Kind: kind, Target: from + " → " + to, Query: query, Lock: "write/" + a.lockName(dst)}
	return a.jobs.Start(context.Background(), spec, func(ctx context.Context, j *jobs.Job) (any, error) {
		res, errs, err := do(ctx, dst, transfer.CopyOptions{Filter: f, OnError: transfer.Skip, Progress: progressTo(j)})
		j.AddErrors(entryErrors(errs)...)
		return res, err
	})
}

// progressTo copies a transfer's progress into a job.
func progressTo(j *jobs.Job) func(transfer.Progress) {
	return func(p transfer.Progress) { j.SetProgress(p.Done, p.Total, p.Failed) }
}

func entryErrors(errs []transfer.EntryError) []jobs.EntryError {
	out := make([]jobs.EntryError, 0, len(errs))
	for _, e := range errs {
		out = append(out, jobs.EntryError{Key: e.Key, Line: e.Line, Error: e.Err.Error()})
	}
	return out
}

// countingWriter counts what reaches the client, so a failure before the
// first byte can still be answered as a JSON error.
type countingWriter struct {
	w  http.ResponseWriter
	mu sync.Mutex
	n  int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.mu.Lock()
	c.n += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingWriter) written() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// streamExport writes the export as the response body. It runs as a job
// whose context is the request's, so a client hanging up stops it, and so
// does DELETE /api/jobs/{id}. fail answers an error before the first byte:
// JSON for the API, a page for the admin UI.
func (a *API) streamExport(w http.ResponseWriter, r *http.Request, name string, b cache.Backend, f cache.Filter, format transfer.Format, fail func(http.ResponseWriter, *http.Request, error)) {
	cw := &countingWriter{w: w}
	ext, ctype := "ndjson", "application/x-ndjson"
	if format == transfer.HAR {
		ext, ctype = "har", "application/json"
	}
	filename := fmt.Sprintf("cachegate-%s-%s.%s", name, time.Now().UTC().Format("20060102T150405Z"), ext)
	j, err := a.jobs.Start(r.Context(), jobs.Spec{Kind: "export", Target: name}, func(ctx context.Context, j *jobs.Job) (any, error) {
		// Only this goroutine touches w until the job ends, so the headers
		// are set here, where the job id is known.
		h := w.Header()
		h.Set("Content-Type", ctype)
		h.Set("Content-Disposition", `attachment; filename="`+filename+`"`)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Cachegate-Job", j.ID())
		res, err := transfer.Export(ctx, b, cw, transfer.ExportOptions{Format: format, Filter: f, Progress: progressTo(j)})
		j.AddErrors(entryErrors(res.Errors)...)
		return res, err
	})
	if err != nil {
		fail(w, r, err)
		return
	}
	<-j.Done()
	s := j.Snapshot()
	if s.State == jobs.Done {
		return
	}
	if cw.written() == 0 {
		if s.State == jobs.Cancelled {
			fail(w, r, &Error{Status: http.StatusConflict, Code: "job_cancelled", Message: "the export was cancelled"})
			return
		}
		a.log.Error("export failed", "backend", name, "job", s.ID, "err", s.Error)
		fail(w, r, &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "internal error"})
		return
	}
	// Part of the file is out and the status is sent: cut the connection
	// so the client sees a truncated download, not a complete-looking one.
	a.log.Warn("export cut short", "backend", name, "job", s.ID, "state", s.State, "err", s.Error)
	panic(http.ErrAbortHandler)
}

// putRecorder passes Puts to a backend and keeps the last error that was
// the backend's fault (not the entry's), so a failed import can be told
// apart: a damaged file is the client's 400, a failing store our 500.
type putRecorder struct {
	cache.Backend
	mu  sync.Mutex
	err error
}

func (p *putRecorder) Put(ctx context.Context, e *cache.Entry) error {
	err := p.Backend.Put(ctx, e)
	if err != nil && !errors.Is(err, cache.ErrInvalid) && ctx.Err() == nil {
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
	}
	return err
}

func (p *putRecorder) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// maxImportBytes caps an import body.
const maxImportBytes = 8 << 30

// handleImport reads an NDJSON export from the body into a backend. It
// runs as a job for the length of the request, so its progress can be
// watched; it answers the job with the transfer result when done.
func (a *API) handleImport(w http.ResponseWriter, r *http.Request) {
	v, name, b, err := a.queryBackend(r, "backend", "on_error")
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	mode := transfer.Stop
	if s := v.Get("on_error"); s != "" {
		if mode, err = transfer.ParseErrorMode(s); err != nil {
			a.writeError(w, r, paramError("on_error", s, "stop, skip"))
			return
		}
	}
	rec := &putRecorder{Backend: b}
	body := http.MaxBytesReader(w, r.Body, maxImportBytes)
	spec := jobs.Spec{Kind: "import", Target: name, Lock: "write/" + a.lockName(b)}
	j, err := a.jobs.Start(r.Context(), spec, func(ctx context.Context, j *jobs.Job) (any, error) {
		res, err := transfer.Import(ctx, rec, body, transfer.ImportOptions{OnError: mode, Progress: progressTo(j)})
		j.AddErrors(entryErrors(res.Errors)...)
		return res, err
	})
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	<-j.Done()
	s := j.Snapshot()
	switch {
	case s.State == jobs.Done:
		writeJSON(w, http.StatusOK, s)
	case rec.failed() != nil:
		a.writeError(w, r, rec.failed())
	case s.State == jobs.Cancelled:
		a.writeError(w, r, &Error{Status: http.StatusConflict, Code: "job_cancelled", Message: "the import was cancelled; entries read until then are stored"})
	default:
		// The input was damaged: say where; entries before it are stored.
		writeJSON(w, http.StatusBadRequest, importError{errorBody: errorBody{Error: s.Error, Code: "bad_import"}, Job: s})
	}
}

// importError is a 400 for a damaged import, with the job for its counts.
type importError struct {
	errorBody
	Job jobs.Snapshot `json:"job"`
}
