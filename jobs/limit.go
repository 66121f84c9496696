package jobs

import (
	"context"
	"sync"
)

// Limiter runs functions in goroutines with at most n running at once per
// key; bulk revalidation keys by upstream so that it never sends one API
// more than n requests at a time, whatever the size of the job.
//
// A Limiter is used by one producer calling Go and then Wait; it is not
// meant to be reused after Wait.
type Limiter struct {
	n  int
	wg sync.WaitGroup

	mu   sync.Mutex // protects sems
	sems map[string]chan struct{}
}

// NewLimiter returns a Limiter allowing n concurrent calls per key (at
// least 1).
func NewLimiter(n int) *Limiter {
	if n < 1 {
		n = 1
	}
	return &Limiter{n: n, sems: map[string]chan struct{}{}}
}

// Go runs fn in a new goroutine once fewer than n functions of key are
// running. It blocks until then, or returns ctx.Err() without running fn
// when ctx ends first. Producers that feed keys in clusters (entries
// listed by URL come grouped by host) rarely wait on one key while
// another has room.
func (l *Limiter) Go(ctx context.Context, key string, fn func()) error {
	l.mu.Lock()
	sem, ok := l.sems[key]
	if !ok {
		sem = make(chan struct{}, l.n)
		l.sems[key] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer func() { <-sem }()
		fn()
	}()
	return nil
}

// Wait waits for every function started by Go to return.
func (l *Limiter) Wait() { l.wg.Wait() }
