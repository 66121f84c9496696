// Package jobs runs long admin operations (bulk revalidation, exports,
// copies, imports) in the background and keeps their progress where an
// API can show it.
//
// A Job counts done / total / failed / skipped entries, keeps the first
// MaxErrors per-entry errors and skip reasons, and ends in one of three states: done, failed or
// cancelled. A Registry starts jobs, finds them by id, refuses a job whose
// lock another running job holds (two bulk revalidations of one backend,
// say), bounds how many run at once, and forgets finished jobs after a
// while. Subscribe streams job snapshots as they change, for a dashboard.
package jobs

import (
	"context"
	"errors"
	"sync"
	"time"
)

// State is where a job is in its life.
type State string

// The job states. A job starts Running and ends in one of the others.
const (
	Running   State = "running"
	Done      State = "done"
	Failed    State = "failed"
	Cancelled State = "cancelled"
)

// Errors returned by the Registry.
var (
	// ErrConflict is wrapped when a running job holds the lock a new job
	// asks for.
	ErrConflict = errors.New("a conflicting job is running")
	// ErrBusy is wrapped when MaxRunning jobs are already running.
	ErrBusy = errors.New("too many jobs are running")
	// ErrNotFound is returned for an unknown or forgotten job id.
	ErrNotFound = errors.New("job not found")
	// ErrFinished is returned when cancelling a job that already ended.
	ErrFinished = errors.New("job already finished")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("job registry closed")
)

// MaxErrors caps the per-entry errors a job keeps; Failed counts them all.
const MaxErrors = 100

// EntryError is one entry a job could not handle, or chose not to.
type EntryError struct {
	Key  string `json:"key,omitempty"`
	Line int64  `json:"line,omitempty"` // input line, for imports
	// Outcome is "skipped" for an entry left alone on purpose (see
	// Job.Skip), with the reason in Error; empty for a failure.
	Outcome string `json:"outcome,omitempty"`
	Error   string `json:"error"`
}

// OutcomeSkipped marks an EntryError that is a skip, not a failure.
const OutcomeSkipped = "skipped"

// Snapshot is a job's state at one moment. It shares nothing with the job.
type Snapshot struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"` // what the job works on, e.g. a backend name
	// Query is Spec.Query: the listing query of what the job selected.
	Query  string `json:"query,omitempty"`
	State  State  `json:"state"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Failed int64  `json:"failed"`
	// Skipped counts entries the job left alone on purpose: neither done
	// nor failed.
	Skipped int64 `json:"skipped"`
	// Errors holds the first MaxErrors entry failures and skips.
	Errors   []EntryError `json:"errors"`
	Started  time.Time    `json:"started"`
	Finished *time.Time   `json:"finished,omitempty"`
	// Error says why a failed job stopped.
	Error string `json:"error,omitempty"`
	// Result is what the job function returned, once it is done.
	Result any `json:"result,omitempty"`
}

// Func is a job's work. It reports progress on j and returns when done or
// when ctx ends; a nil error means done, an error after ctx ended means
// cancelled, any other error failed.
type Func func(ctx context.Context, j *Job) (result any, err error)

// Spec describes a job to start.
type Spec struct {
	// Kind names the operation ("revalidate", "export", ...).
	Kind string
	// Target names what it works on, shown to users.
	Target string
	// Query, when not empty, is the entries listing's query (URL-encoded
	// filter parameters) that selects what the job works on, so a page can
	// link to those entries.
	Query string
	// Lock, when not empty, is held while the job runs: a second job asking
	// for the same lock is refused with ErrConflict.
	Lock string
}

// Job is one running or finished operation. Its methods are safe for
// concurrent use, so a job function may report from several workers.
type Job struct {
	id      string
	spec    Spec
	started time.Time
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{} // closed when the job has ended
	reg     *Registry

	stopOnClose func() bool

	// pubMu orders publishing: a snapshot is taken and sent under it, so
	// subscribers see a job's snapshots in the order they were taken and
	// never a running one after the final one.
	pubMu sync.Mutex

	mu           sync.Mutex // protects the fields below
	state        State
	n            int64 // done
	total        int64
	failed       int64
	skipped      int64
	errs         []EntryError
	finished     time.Time
	err          string
	result       any
	lastNotify   time.Time
	flushPending bool // a trailing notification is scheduled
}

// ID returns the job's id.
func (j *Job) ID() string { return j.id }

// Done returns a channel closed when the job has ended.
func (j *Job) Done() <-chan struct{} { return j.done }

// Cancel asks the job to stop; it ends as cancelled once its function
// returns. Cancelling a finished job does nothing.
func (j *Job) Cancel() { j.cancel() }

// SetTotal sets how many entries the job expects to handle.
func (j *Job) SetTotal(n int64) {
	j.mu.Lock()
	j.total = n
	j.mu.Unlock()
	j.changed(false)
}

// Add counts n more entries handled.
func (j *Job) Add(n int64) {
	j.mu.Lock()
	j.n += n
	j.mu.Unlock()
	j.changed(false)
}

// Fail counts one entry that failed and keeps its error while fewer than
// MaxErrors are kept.
func (j *Job) Fail(e EntryError) {
	j.mu.Lock()
	j.failed++
	if len(j.errs) < MaxErrors {
		j.errs = append(j.errs, e)
	}
	j.mu.Unlock()
	j.changed(false)
}

// Skip counts one entry the job left alone on purpose (a revalidation
// that could not send the entry's request faithfully, say) and keeps the
// reason, marked OutcomeSkipped, while fewer than MaxErrors are kept.
func (j *Job) Skip(e EntryError) {
	e.Outcome = OutcomeSkipped
	j.mu.Lock()
	j.skipped++
	if len(j.errs) < MaxErrors {
		j.errs = append(j.errs, e)
	}
	j.mu.Unlock()
	j.changed(false)
}

// SetProgress replaces the counters, for work that keeps its own (the
// transfer package reports whole Progress values).
func (j *Job) SetProgress(done, total, failed int64) {
	j.mu.Lock()
	j.n, j.total, j.failed = done, total, failed
	j.mu.Unlock()
	j.changed(false)
}

// AddErrors keeps entry errors without counting them, for work that
// counts failures itself (see SetProgress).
func (j *Job) AddErrors(errs ...EntryError) {
	j.mu.Lock()
	for _, e := range errs {
		if len(j.errs) >= MaxErrors {
			break
		}
		j.errs = append(j.errs, e)
	}
	j.mu.Unlock()
}

// Snapshot returns the job's current state.
func (j *Job) Snapshot() Snapshot {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Snapshot{
		ID: j.id, Kind: j.spec.Kind, Target: j.spec.Target, Query: j.spec.Query, State: j.state,
		Done: j.n, Total: j.total, Failed: j.failed, Skipped: j.skipped, Errors: append([]EntryError{}, j.errs...),
		Started: j.started, Error: j.err, Result: j.result,
	}
	if !j.finished.IsZero() {
		t := j.finished
		s.Finished = &t
	}
	return s
}

// changed tells subscribers. Progress updates are throttled to one per
// notifyEvery per job, so a job over a million entries does not flood a
// dashboard; state changes (force) always go out. A throttled update is
// not lost: a timer sends the latest counters once the interval has
// passed, so a job that pauses after a burst of progress does not leave
// dashboards showing the counts from before the burst.
func (j *Job) changed(force bool) {
	now := j.reg.now()
	j.mu.Lock()
	if !force {
		if j.state != Running {
			// The final snapshot went out, or is about to.
			j.mu.Unlock()
			return
		}
		if wait := notifyEvery - now.Sub(j.lastNotify); wait > 0 {
			if !j.flushPending {
				j.flushPending = true
				time.AfterFunc(wait, j.flush)
			}
			j.mu.Unlock()
			return
		}
	}
	j.lastNotify = now
	j.mu.Unlock()
	j.publish()
}

// flush sends the progress a throttled update held back, unless the job
// has ended (its final snapshot says it all).
func (j *Job) flush() {
	j.mu.Lock()
	j.flushPending = false
	running := j.state == Running
	j.lastNotify = j.reg.now()
	j.mu.Unlock()
	if running {
		j.publish()
	}
}

func (j *Job) publish() {
	j.pubMu.Lock()
	defer j.pubMu.Unlock()
	j.reg.publish(j.Snapshot())
}

// notifyEvery is the least time between two progress notifications of
// one job: about ten a second, smooth enough for a progress bar.
const notifyEvery = 100 * time.Millisecond
