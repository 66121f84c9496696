package gateway

import (
	"github.com/cachegate/cachegate/cache"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Event is something that happened in the gateway, for live views.
type Event struct {
	Type     string    `json:"type"` // "request"
	Time     time.Time `json:"time"`
	Upstream string    `json:"upstream,omitempty"`
	Method   string    `json:"method,omitempty"`
	URL      string    `json:"url,omitempty"` // redacted
	Key      string    `json:"key,omitempty"`
	Cache    string    `json:"cache,omitempty"` // HIT, MISS, STALE, REVALIDATED, BYPASS, ERROR
	Status   int       `json:"status,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`
	Duration float64   `json:"duration_ms,omitempty"`

	// target and policy let a reader redact the URL (Redact) off the
	// request's path: a subscriber that keeps only some events pays for
	// those alone.
	target *url.URL
	policy *cache.Policy
}

// Redact fills URL with the request's upstream URL, ignored parameters
// redacted, when the publisher left it to the reader.
func (e *Event) Redact() {
	if e.URL == "" && e.target != nil {
		e.URL = RedactURL(e.target, e.policy)
	}
	e.target, e.policy = nil, nil
}

// Hub fans events out to subscribers without ever blocking the publisher:
// a subscriber whose buffer is full misses events (and learns how many
// through Subscription.Dropped) rather than slowing the gateway.
//
// The zero value is ready to use.
type Hub struct {
	mu   sync.Mutex                 // protects subs
	subs map[*Subscription]struct{} // current subscribers
	n    atomic.Int64               // len(subs), read without the lock on every request

	// A subscriber that shows only a sample sets a budget (Refill): past
	// it, a request costs the publisher two atomic adds and no event.
	limited atomic.Bool
	budget  atomic.Int64 // events still admitted until the next Refill
	refused atomic.Int64 // events refused since the last Refill
}

// Admit reports whether the publisher should build and publish the next
// event: always, unless a subscriber's budget (Refill) is used up, in
// which case the event is counted as refused instead.
func (h *Hub) Admit() bool {
	if !h.limited.Load() || h.budget.Add(-1) >= 0 {
		return true
	}
	h.refused.Add(1)
	return false
}

// Refill admits n more events until the next call and returns how many
// Admit refused since the last one. The first call turns the budget on,
// for every subscriber: the hub's one sampling subscriber sets it.
func (h *Hub) Refill(n int64) (refused int64) {
	h.budget.Store(n)
	h.limited.Store(true)
	return h.refused.Swap(0)
}

// Unlimit turns the budget off again.
func (h *Hub) Unlimit() {
	h.limited.Store(false)
	h.refused.Store(0)
}

// Subscription receives events from a Hub until closed.
type Subscription struct {
	hub     *Hub
	c       chan Event
	mu      sync.Mutex // protects dropped
	dropped int64
}

// Hub returns the hub s subscribes to.
func (s *Subscription) Hub() *Hub { return s.hub }

// C returns the channel events arrive on. It is closed by Close.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped returns how many events did not fit the buffer so far.
func (s *Subscription) Dropped() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close unsubscribes and closes the channel. It is safe to call twice.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if _, ok := s.hub.subs[s]; ok {
		delete(s.hub.subs, s)
		s.hub.n.Store(int64(len(s.hub.subs)))
		close(s.c)
	}
}

// Subscribe returns a subscription with a buffer of n events (n < 1 means 64).
func (h *Hub) Subscribe(n int) *Subscription {
	if n < 1 {
		n = 64
	}
	s := &Subscription{hub: h, c: make(chan Event, n)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[*Subscription]struct{})
	}
	h.subs[s] = struct{}{}
	h.n.Store(int64(len(h.subs)))
	return s
}

// Publish sends e to every subscriber that has room for it.
func (h *Hub) Publish(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			s.mu.Lock()
			s.dropped++
			s.mu.Unlock()
		}
	}
}

// Subscribers returns the number of current subscribers; the gateway skips
// building events when nobody listens.
func (h *Hub) Subscribers() int { return int(h.n.Load()) }
