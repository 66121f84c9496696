package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"
)

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
