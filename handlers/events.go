package handlers

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/gateway"
	"github.com/cachegate/cachegate/jobs"
	"github.com/go-chi/chi/v5"
	"github.com/gorilla/websocket"
)

// EventOptions tune the /ws event stream. The zero value is usable; the
// short intervals exist for tests.
type EventOptions struct {
	// SendBuffer is how many messages wait for one client before it is
	// dropped as too slow (default 64).
	SendBuffer int
	// PingInterval is how often the server pings (default 25s); a client
	// that answers neither a ping nor anything else within PongWait
	// (default 60s, and at least twice PingInterval, since a pong cannot
	// come back before its ping went out) is disconnected.
	PingInterval time.Duration
	PongWait     time.Duration
	// WriteWait bounds the write of one message (default 10s).
	WriteWait time.Duration
	// StatsInterval is how often a stats message goes out (default 1s).
	StatsInterval time.Duration
	// MaxClients bounds the open sockets (default 256); more are refused
	// with 503 before upgrading.
	MaxClients int
	// BatchInterval is how often request events go out, in batches of at
	// most MaxBatch (defaults 100ms and 25: more than anyone reads, and
	// every socket on the tail is written each batch).
	BatchInterval time.Duration
	MaxBatch      int
}

// EventCounts say how the /ws clients fare.
type EventCounts struct {
	// Clients is the number connected now.
	Clients int64 `json:"clients"`
	// Dropped counts clients the server closed because they did not keep
	// up: their send buffer filled or a write passed its deadline.
	Dropped int64 `json:"dropped"`
	// Skipped counts request events left out: beyond a batch's MaxBatch,
	// or of batches a client with a half-full buffer missed. The live tail
	// is a sample when traffic is heavy.
	Skipped int64 `json:"skipped"`
}

// Topics a client can subscribe to.
const (
	topicJobs     = "jobs"
	topicStats    = "stats"
	topicRequests = "requests"
)

var (
	allTopics     = []string{topicJobs, topicStats, topicRequests}
	defaultTopics = topicSet{topicJobs: true, topicStats: true}
)

// maxClientMessage bounds what a client may send in one frame; its only
// message is a short subscription.
const maxClientMessage = 4096

// eventSource is the part of the gateway that publishes request events;
// *gateway.Gateway has it. Without it the requests topic stays silent.
type eventSource interface {
	Events() *gateway.Hub
}

var _ eventSource = (*gateway.Gateway)(nil)

// events is the state shared by every /ws client.
type events struct {
	opts     EventOptions
	upgrader websocket.Upgrader
	closing  chan struct{} // closed by close: every client says goodbye
	once     sync.Once
	tail     tail

	clients atomic.Int64
	dropped atomic.Int64
	skipped atomic.Int64
}

func newEvents(opts EventOptions) *events {
	if opts.SendBuffer <= 0 {
		opts.SendBuffer = 64
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 25 * time.Second
	}
	if opts.PongWait <= 0 {
		opts.PongWait = 60 * time.Second
	}
	if opts.PongWait < 2*opts.PingInterval {
		opts.PongWait = 2 * opts.PingInterval
	}
	if opts.WriteWait <= 0 {
		opts.WriteWait = 10 * time.Second
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Second
	}
	if opts.MaxClients <= 0 {
		opts.MaxClients = 256
	}
	if opts.BatchInterval <= 0 {
		opts.BatchInterval = 100 * time.Millisecond
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 25
	}
	e := &events{opts: opts, closing: make(chan struct{})}
	e.tail.opts = &e.opts
	e.tail.count = func(n int64) { e.skipped.Add(n) }
	e.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// Idle sockets hold no write buffer between messages.
		WriteBufferPool: &sync.Pool{},
		// handleEvents checks the origin before upgrading, with an
		// answer the browser's developer tools can show.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			writeJSON(w, status, errorBody{Code: "not_websocket",
				Error: reason.Error() + "; /ws speaks the websocket protocol (RFC 6455)"})
		},
	}
	return e
}

func (e *events) close() { e.once.Do(func() { close(e.closing) }) }

// EventCounts returns how the /ws clients fare, for tests and dashboards.
func (a *API) EventCounts() EventCounts {
	return EventCounts{Clients: a.events.clients.Load(), Dropped: a.events.dropped.Load(), Skipped: a.events.skipped.Load()}
}

// MountEvents adds GET /ws, the websocket of live job progress, stats and
// requests, behind the same guard as the admin pages.
func (a *API) MountEvents(r chi.Router) {
	r.Method(http.MethodGet, "/ws", a.protectPages(http.HandlerFunc(a.handleEvents)))
}

// handleEvents upgrades to a websocket and streams events until the client
// goes away, stops keeping up, or the server closes. Three goroutines
// serve a client: this one turns the sources into messages and never
// blocks on the client, readLoop reads its frames (so pongs and close
// frames are seen), and writeLoop is the one writer.
func (a *API) handleEvents(w http.ResponseWriter, r *http.Request) {
	if a.disabled != "" {
		a.writeError(w, r, &Error{Status: http.StatusForbidden, Code: "admin_disabled", Message: a.disabled})
		return
	}
	if !sameOrigin(r) {
		a.writeError(w, r, &Error{Status: http.StatusForbidden, Code: "forbidden_origin",
			Message: "websocket from origin " + quote(r.Header.Get("Origin")) + " refused: /ws only accepts pages of this server (" + requestOrigin(r) + ")"})
		return
	}
	ev := a.events
	if n := ev.clients.Add(1); n > int64(ev.opts.MaxClients) {
		ev.clients.Add(-1)
		a.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: "too_many_clients",
			Message: "too many websocket clients are connected (at most " + itoa(ev.opts.MaxClients) + "); try again later"})
		return
	}
	defer ev.clients.Add(-1)
	conn, err := ev.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := &wsClient{
		ev: ev, conn: conn,
		send: make(chan []byte, ev.opts.SendBuffer),
		in:   make(chan clientRequest),
		done: make(chan struct{}),
	}
	go c.readLoop()
	go c.writeLoop()
	a.pump(c)
}

// message is one frame to a client: its type and, under a key of the same
// name, the payload.
type message struct {
	Type     string            `json:"type"`
	Job      *jobs.Snapshot    `json:"job,omitempty"`
	Stats    *gateway.Snapshot `json:"stats,omitempty"`
	Requests []gateway.Event   `json:"requests,omitempty"`
	// Samples are, on a stats message, the one-second samples taken since
	// the client's previous stats message, oldest first; with History set
	// (the first message after subscribing, and so after every reconnect)
	// they are the whole history the server holds, which replaces what
	// the client charted.
	Samples []gateway.Sample `json:"samples,omitempty"`
	History bool             `json:"history,omitempty"`
	// Minute sums the last minute of samples (its hit ratio, say).
	Minute *gateway.Window `json:"minute,omitempty"`
	// Backends are the entries and bytes of each backend, as counted at
	// most a few seconds ago (the count is shared by every client).
	Backends map[string]backendFigure `json:"backends,omitempty"`
	// Skipped counts request events left out before this batch.
	Skipped    int64     `json:"skipped,omitempty"`
	Subscribed *[]string `json:"subscribed,omitempty"` // set, even to none, on "subscribed"
	JobID      string    `json:"job_id,omitempty"`     // on "job_not_found"
}

// encode marshals a message. Every message is plain data, so an error
// means a bug; the client then learns of it rather than the server
// panicking.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"type":"error","code":"internal_error","error":"internal error"}`)
	}
	return b
}

// pump feeds one client from the job registry, the stats and the request
// tail, subscribing to each only while the client listens to it. It never
// blocks on the client: enqueue drops a client whose buffer is full.
func (a *API) pump(c *wsClient) {
	var (
		jobsC     <-chan jobs.Snapshot
		unsubJobs func()
		tick      *time.Ticker
		tickC     <-chan time.Time
		tailing   bool
	)
	defer func() {
		if unsubJobs != nil {
			unsubJobs()
		}
		if tick != nil {
			tick.Stop()
		}
		if tailing {
			a.events.tail.remove(c)
		}
	}()
	var seq uint64 // the latest sample this client has
	stats := func(fresh bool) bool {
		st := a.gw.Stats()
		snap := st.Snapshot()
		m := message{Type: topicStats, Stats: &snap, History: fresh, Backends: a.liveFigures.get()}
		if fresh {
			seq = 0
		}
		m.Samples, seq = st.Since(seq)
		w := st.Window(snap.Time, time.Minute)
		m.Minute = &w
		return c.enqueue(encode(m))
	}
	// apply changes the subscriptions to t, then confirms them: once a
	// client reads "subscribed", nothing of its topics is missed. A new
	// jobs topic starts with every running job, a new stats topic with the
	// counters now.
	apply := func(t topicSet) bool {
		newJobs := t[topicJobs] && jobsC == nil
		switch {
		case newJobs:
			jobsC, unsubJobs = a.jobs.Subscribe()
		case !t[topicJobs] && jobsC != nil:
			unsubJobs()
			jobsC, unsubJobs = nil, nil
		}
		newStats := t[topicStats] && tick == nil
		switch {
		case newStats:
			tick = time.NewTicker(a.events.opts.StatsInterval)
			tickC = tick.C
		case !t[topicStats] && tick != nil:
			tick.Stop()
			tick, tickC = nil, nil
		}
		if src, ok := a.gw.(eventSource); ok && t[topicRequests] != tailing {
			tailing = t[topicRequests]
			if tailing {
				a.events.tail.add(c, src.Events())
			} else {
				a.events.tail.remove(c)
			}
		}
		list := t.list()
		if !c.enqueue(encode(message{Type: "subscribed", Subscribed: &list})) {
			return false
		}
		if newJobs {
			// Listed after subscribing, so no change falls between.
			for _, s := range a.jobs.List() {
				if s.State == jobs.Running && !c.enqueue(encode(message{Type: "job", Job: &s})) {
					return false
				}
			}
		}
		return !newStats || stats(true)
	}
	if !apply(defaultTopics) {
		return
	}
	for {
		select {
		case <-c.done:
			return
		case <-a.events.closing:
			c.close(websocket.CloseGoingAway, "server shutting down")
			return
		case req := <-c.in:
			if req.topics != nil && !apply(req.topics) {
				return
			}
			if !a.answerJobs(c, req.jobs) {
				return
			}
		case s, ok := <-jobsC:
			if !ok {
				// The registry dropped this subscriber or closed. A shutdown
				// closes the registry after the events, so both may be ready
				// at once: a shutdown is still a shutdown.
				select {
				case <-a.events.closing:
					c.close(websocket.CloseGoingAway, "server shutting down")
				default:
					c.close(websocket.CloseTryAgainLater, "job updates stopped; reconnect")
				}
				return
			}
			if !c.enqueue(encode(message{Type: "job", Job: &s})) {
				return
			}
		case <-tickC:
			if !stats(false) {
				return
			}
		}
	}
}

// answerJobs sends the current state of each job asked for, as a job
// message, or job_not_found for one the registry does not know (forgotten
// or from before a restart), so the page stops watching it.
func (a *API) answerJobs(c *wsClient, ids []string) bool {
	for _, id := range ids {
		j, err := a.jobs.Get(id)
		var msg []byte
		if err != nil {
			msg = encode(message{Type: "job_not_found", JobID: id})
		} else {
			s := j.Snapshot()
			msg = encode(message{Type: "job", Job: &s})
		}
		if !c.enqueue(msg) {
			return false
		}
	}
	return true
}
