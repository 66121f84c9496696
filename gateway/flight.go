package gateway

import "sync"

// flightGroup collapses concurrent fetches of one key into a single
// upstream call, like groupcache's singleflight, but tells each caller
// whether it was the one that ran fn: only that caller may use a result
// that cannot be shared (a body streaming through).
//
// The zero value is ready to use.
type flightGroup struct {
	mu sync.Mutex         // protects m
	m  map[string]*flight // in-flight calls by key
}

type flight struct {
	done chan struct{}
	res  *fetchResult
}

// do runs fn once for all concurrent callers with the same key and returns
// its result to each. leader is true for the caller that ran fn.
func (g *flightGroup) do(key string, fn func() *fetchResult) (res *fetchResult, leader bool) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	if f, ok := g.m[key]; ok {
		g.mu.Unlock()
		<-f.done
		return f.res, false
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	g.mu.Unlock()

	defer func() {
		// Release the waiters even if fn panics; they then see a nil result
		// and fetch on their own.
		g.mu.Lock()
		delete(g.m, key)
		g.mu.Unlock()
		close(f.done)
	}()
	f.res = fn()
	return f.res, true
}

// inFlight reports whether a call for key is running.
func (g *flightGroup) inFlight(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[key]
	return ok
}
