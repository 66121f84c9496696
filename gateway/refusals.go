package gateway

import (
	"sync"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Refusal says why the last response fetched for a key was not stored.
type Refusal struct {
	Status int       `json:"status"`
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// refusals remembers, per key, why the last response fetched for it was
// not stored (no-store, private, a status or size the policy refuses...),
// so that Explain can say so: nothing is stored to explain from, and a
// guess from a response without caching headers would answer "stored".
// It holds at most refusalsSize keys and starts afresh when full; it only
// informs, it never decides.
type refusals struct {
	mu sync.Mutex         // protects m
	m  map[string]Refusal // by base key
}

const refusalsSize = 4096

// note records the decision for a response to key: a refusal is kept, a
// decision to store forgets any earlier one.
func (r *refusals) note(key string, status int, dec cache.Decision, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if dec.Store {
		delete(r.m, key) // a no-op on a nil map
		return
	}
	if r.m == nil || len(r.m) >= refusalsSize {
		r.m = make(map[string]Refusal)
	}
	r.m[key] = Refusal{Status: status, Rule: dec.Rule, Reason: dec.Reason, At: at}
}

func (r *refusals) get(key string) (Refusal, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	x, ok := r.m[key]
	return x, ok
}
