package gateway

import (
	"sync"
	"time"
)

// flightGroup collapses concurrent fetches of one key into a single
// upstream call, like groupcache's singleflight, but tells each caller
// whether it was the one that ran fn: only that caller may use a result
// that cannot be shared (a body streaming through).
//
// The zero value is ready to use.
type flightGroup struct {
	mu sync.Mutex         // protects m, ended and waiting
	m  map[string]*flight // in-flight calls by key
	// waiting counts the callers waiting for another's call.
	waiting int
	ended   map[string]time.Time
	// endedOrder[endedHead:] lists ended in the order calls ended, for
	// pruning.
	endedOrder []endedCall
	endedHead  int
}

type endedCall struct {
	key string
	at  time.Time
}

// endedFor is how long the end of a call is remembered: longer than any
// lookup that began before it should take.
const endedFor = 10 * time.Second

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
		g.waiting++
		g.mu.Unlock()
		<-f.done
		g.mu.Lock()
		g.waiting--
		g.mu.Unlock()
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
		g.remember(key, time.Now())
		g.mu.Unlock()
		close(f.done)
	}()
	f.res = fn()
	return f.res, true
}

// remember notes that a call for key ended at now, and forgets the calls
// that ended more than endedFor ago.
func (g *flightGroup) remember(key string, now time.Time) {
	if g.ended == nil {
		g.ended = make(map[string]time.Time)
	}
	g.ended[key] = now
	g.endedOrder = append(g.endedOrder, endedCall{key, now})
	for g.endedHead < len(g.endedOrder) && now.Sub(g.endedOrder[g.endedHead].at) > endedFor {
		old := g.endedOrder[g.endedHead]
		if g.ended[old.key].Equal(old.at) {
			delete(g.ended, old.key)
		}
		g.endedOrder[g.endedHead] = endedCall{}
		g.endedHead++
	}
	if g.endedHead > len(g.endedOrder)/2 {
		n := copy(g.endedOrder, g.endedOrder[g.endedHead:])
		g.endedOrder = g.endedOrder[:n]
		g.endedHead = 0
	}
}

// endedSince reports whether a call for key ended after t.
func (g *flightGroup) endedSince(key string, t time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	at, ok := g.ended[key]
	return ok && at.After(t)
}

// inFlight reports whether a call for key is running.
func (g *flightGroup) inFlight(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.m[key]
	return ok
}

// followers returns how many callers are waiting for another's call.
func (g *flightGroup) followers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiting
}
