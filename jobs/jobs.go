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
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
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

// Options tune a Registry. The zero value is usable.
type Options struct {
	// MaxRunning bounds the jobs running at once (default 4); Start
	// refuses more with ErrBusy.
	MaxRunning int
	// Keep is how long a finished job stays visible (default 1h);
	// MaxFinished how many finished jobs are kept at most (default 100).
	Keep        time.Duration
	MaxFinished int
	// Now is the clock, for tests.
	Now func() time.Time
}

// Registry starts jobs and keeps them until they are old. It is safe for
// concurrent use.
type Registry struct {
	opts Options
	base context.Context // parent of background jobs; cancelled by Close
	stop context.CancelFunc
	wg   sync.WaitGroup // running jobs

	mu      sync.Mutex // protects the fields below
	jobs    map[string]*Job
	locks   map[string]*Job
	running int
	subs    map[chan Snapshot]struct{}
	closed  bool
}

// New returns an empty registry.
func New(opts Options) *Registry {
	if opts.MaxRunning <= 0 {
		opts.MaxRunning = 4
	}
	if opts.Keep <= 0 {
		opts.Keep = time.Hour
	}
	if opts.MaxFinished <= 0 {
		opts.MaxFinished = 100
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	base, stop := context.WithCancel(context.Background())
	return &Registry{
		opts: opts, base: base, stop: stop,
		jobs: map[string]*Job{}, locks: map[string]*Job{}, subs: map[chan Snapshot]struct{}{},
	}
}

func (r *Registry) now() time.Time { return r.opts.Now() }

// Start runs fn as a new job in the background and returns it at once.
// The job's context is cancelled by Job.Cancel, by Close, and by parent
// ending: pass context.Background() for a job that outlives the request
// that started it, or the request's context for one that streams into
// the response. Start fails with ErrConflict when a running job holds
// spec.Lock and with ErrBusy when MaxRunning jobs run.
func (r *Registry) Start(parent context.Context, spec Spec, fn Func) (*Job, error) {
	j, err := r.register(parent, spec)
	if err != nil {
		return nil, err
	}
	// Publish the start before the work begins, so a subscriber never sees
	// a job end before it saw it start.
	j.changed(true)
	ctx := j.ctx
	go func() {
		defer r.wg.Done()
		defer j.stopOnClose()
		result, err := run(ctx, j, fn)
		r.finish(j, result, err, ctx.Err() != nil)
		j.cancel()
	}()
	return j, nil
}

func (r *Registry) register(parent context.Context, spec Spec) (*Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	r.pruneLocked()
	if spec.Lock != "" {
		if other, held := r.locks[spec.Lock]; held {
			return nil, fmt.Errorf("%w: job %s (%s of %s) is running; wait for it or cancel it with DELETE /api/jobs/%s",
				ErrConflict, other.id, other.spec.Kind, other.spec.Target, other.id)
		}
	}
	if r.running >= r.opts.MaxRunning {
		return nil, fmt.Errorf("%w: %d jobs are running, the most allowed; try again when one ends", ErrBusy, r.running)
	}
	ctx, cancel := context.WithCancel(parent)
	j := &Job{id: newID(), spec: spec, started: r.now(), ctx: ctx, cancel: cancel, done: make(chan struct{}), reg: r, state: Running}
	// Close cancels every job through r.base, whatever its parent.
	j.stopOnClose = context.AfterFunc(r.base, cancel)
	r.jobs[j.id] = j
	if spec.Lock != "" {
		r.locks[spec.Lock] = j
	}
	r.running++
	r.wg.Add(1)
	return j, nil
}

// run calls fn, turning a panic into a failure so one bad job cannot take
// the server down.
func run(ctx context.Context, j *Job, fn Func) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("job panicked: %v", p)
		}
	}()
	return fn(ctx, j)
}

func (r *Registry) finish(j *Job, result any, err error, cancelled bool) {
	j.mu.Lock()
	j.finished = r.now()
	j.result = result
	switch {
	case err == nil:
		j.state = Done
	case cancelled:
		j.state = Cancelled
	default:
		j.state = Failed
		j.err = err.Error()
	}
	j.mu.Unlock()

	r.mu.Lock()
	if r.locks[j.spec.Lock] == j {
		delete(r.locks, j.spec.Lock)
	}
	r.running--
	r.mu.Unlock()
	close(j.done)
	j.changed(true)
}

// Get returns the job with id, or ErrNotFound.
func (r *Registry) Get(id string) (*Job, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked()
	j, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q (finished jobs are kept for %v)", ErrNotFound, id, r.opts.Keep)
	}
	return j, nil
}

// Keep returns how long a finished job stays visible.
func (r *Registry) Keep() time.Duration { return r.opts.Keep }

// Cancel cancels the running job with id. It returns ErrNotFound for an
// unknown job and ErrFinished for one that has ended.
func (r *Registry) Cancel(id string) (*Job, error) {
	j, err := r.Get(id)
	if err != nil {
		return nil, err
	}
	select {
	case <-j.done:
		return j, fmt.Errorf("%w: job %s is %s", ErrFinished, id, j.Snapshot().State)
	default:
	}
	j.Cancel()
	return j, nil
}

// List returns snapshots of every kept job, newest first.
func (r *Registry) List() []Snapshot {
	r.mu.Lock()
	r.pruneLocked()
	jobs := make([]*Job, 0, len(r.jobs))
	for _, j := range r.jobs {
		jobs = append(jobs, j)
	}
	r.mu.Unlock()
	out := make([]Snapshot, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.Snapshot())
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Started.Equal(out[b].Started) {
			return out[a].Started.After(out[b].Started)
		}
		return out[a].ID > out[b].ID
	})
	return out
}

// pruneLocked forgets finished jobs older than Keep, then the oldest
// finished ones beyond MaxFinished. Running jobs are never forgotten. It
// runs on every lookup rather than on a timer, so an idle registry costs
// nothing.
func (r *Registry) pruneLocked() {
	now := r.now()
	var finished []*Job
	for id, j := range r.jobs {
		j.mu.Lock()
		end := j.finished
		j.mu.Unlock()
		if end.IsZero() {
			continue
		}
		if now.Sub(end) > r.opts.Keep {
			delete(r.jobs, id)
			continue
		}
		finished = append(finished, j)
	}
	if extra := len(finished) - r.opts.MaxFinished; extra > 0 {
		sort.Slice(finished, func(a, b int) bool { return finished[a].finished.Before(finished[b].finished) })
		for _, j := range finished[:extra] {
			delete(r.jobs, j.id)
		}
	}
}

// Subscribe returns a channel of job snapshots, sent when a job starts,
// ends, and (at most every 100ms per job, the latest counts always sent
// in the end) when it makes progress. One job's snapshots arrive in order. A
// subscriber that does not keep up is dropped, its channel closed, rather
// than slowing the jobs down; it can resubscribe and call List to catch
// up. Call the returned function to unsubscribe.
func (r *Registry) Subscribe() (<-chan Snapshot, func()) {
	ch := make(chan Snapshot, 64)
	r.mu.Lock()
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[ch]; ok {
			delete(r.subs, ch)
			close(ch)
		}
	}
}

func (r *Registry) publish(s Snapshot) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- s:
		default:
			delete(r.subs, ch)
			close(ch)
		}
	}
}

// Close cancels every running job and waits for them to end. Start fails
// afterwards.
func (r *Registry) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.stop()
	r.wg.Wait()
	r.mu.Lock()
	for ch := range r.subs {
		delete(r.subs, ch)
		close(ch)
	}
	r.mu.Unlock()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
