package handlers

import (
	"sync"
	"time"

	"github.com/cachegate/cachegate/gateway"
)

// tail batches the gateway's request events for every client on the
// requests topic. One goroutine subscribes to the hub while any client
// listens, and every BatchInterval encodes what came in once and hands
// the same bytes to each client: the cost per request stays one channel
// send whatever the number of clients, and a client gets a few messages a
// second however busy the gateway is. A batch holds at most MaxBatch
// events; the rest are counted in its "skipped". A client whose queue is
// half full misses batches, and learns how many events it missed with
// the next batch it gets.
type tail struct {
	opts  *EventOptions
	count func(skipped int64) // adds to EventCounts.Skipped

	mu      sync.Mutex          // protects the fields below
	clients map[*wsClient]int64 // listening clients, with the events each missed
	stop    chan struct{}       // closed to stop the running goroutine; nil when none
}

func (t *tail) add(c *wsClient, hub *gateway.Hub) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients == nil {
		t.clients = map[*wsClient]int64{}
	}
	t.clients[c] = 0
	if t.stop == nil {
		t.stop = make(chan struct{})
		go t.run(hub.Subscribe(tailHubBuffer), t.stop)
	}
}

func (t *tail) remove(c *wsClient) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.clients[c]; !ok {
		return
	}
	delete(t.clients, c)
	if len(t.clients) == 0 && t.stop != nil {
		close(t.stop)
		t.stop = nil
	}
}

// tailHubBuffer is the tail's buffer at the hub: events that wait while
// the tail encodes a batch.
const tailHubBuffer = 4096

func (t *tail) run(sub *gateway.Subscription, stop chan struct{}) {
	defer sub.Close()
	// The gateway builds no more events than a batch holds: past that, a
	// request costs it two atomic adds, counted here as skipped.
	hub := sub.Hub()
	hub.Refill(int64(t.opts.MaxBatch))
	defer hub.Unlimit()
	tick := time.NewTicker(t.opts.BatchInterval)
	defer tick.Stop()
	var (
		batch   = make([]gateway.Event, 0, t.opts.MaxBatch)
		skipped int64 // events left out of this batch
		lost    int64 // sub.Dropped() counted so far
	)
	for {
		select {
		case <-stop:
			return
		case e := <-sub.C():
			if len(batch) < t.opts.MaxBatch {
				e.Redact() // only the events sent cost a redaction
				batch = append(batch, e)
			} else {
				skipped++
			}
		case <-tick.C:
			if d := sub.Dropped(); d > lost {
				skipped += d - lost
				lost = d
			}
			skipped += hub.Refill(int64(t.opts.MaxBatch))
			if len(batch) == 0 && skipped == 0 {
				continue
			}
			t.count(skipped)
			t.fanOut(batch, skipped)
			batch, skipped = batch[:0], 0
		}
	}
}

// fanOut hands one batch to every listening client. It enqueues outside
// the lock: dropping a client may wait for its socket.
func (t *tail) fanOut(batch []gateway.Event, skipped int64) {
	msg := encode(message{Type: topicRequests, Requests: batch, Skipped: skipped})
	type delivery struct {
		c   *wsClient
		msg []byte
	}
	var out []delivery
	t.mu.Lock()
	for c, missed := range t.clients {
		if len(c.send) >= cap(c.send)/2 {
			t.clients[c] = missed + int64(len(batch)) + skipped
			t.count(int64(len(batch)))
			continue
		}
		m := msg
		if missed > 0 {
			// Rare: only a client that fell behind pays for its own copy.
			m = encode(message{Type: topicRequests, Requests: batch, Skipped: skipped + missed})
			t.clients[c] = 0
		}
		out = append(out, delivery{c, m})
	}
	t.mu.Unlock()
	for _, d := range out {
		d.c.enqueue(d.msg)
	}
}
