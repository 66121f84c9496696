package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
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

// sameOrigin reports whether the request's Origin is this server, as the
// browser reached it. No Origin means no browser: a script or tool that
// the guard in front has already let in, and no page of another site can
// send a websocket handshake without one.
//
// Behind a reverse proxy the browser reached the proxy, which names what
// it reached in X-Forwarded-Proto and X-Forwarded-Host; an Origin equal to
// that passes too. A browser cannot set those headers on a handshake, so
// no page of another site gets in by them; which peers may speak for the
// client is the guard's judgement, made before this handler runs.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if originIs(o, scheme, r.Host) {
		return true
	}
	proto, host := forwardedItem(r, "X-Forwarded-Proto"), forwardedItem(r, "X-Forwarded-Host")
	if proto == "" && host == "" {
		return false
	}
	if proto != "http" && proto != "https" {
		proto = scheme
	}
	if host == "" {
		host = r.Host
	}
	return originIs(o, proto, host)
}

// originIs compares an Origin header with scheme://host, ignoring case
// and default ports. "null" (a sandboxed frame) never matches.
func originIs(origin, scheme, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return false
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(hostPort(u.Host, scheme), hostPort(host, scheme))
}

// forwardedItem is the right-most item of a proxy header: the one the
// nearest proxy added.
func forwardedItem(r *http.Request, name string) string {
	v := r.Header.Get(name)
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

func requestOrigin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// hostPort spells host with its port, the scheme's default when absent,
// so "example.com" and "example.com:80" compare equal over http.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(host, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(host, "[]"), "80")
}

// topicSet is what a client listens to.
type topicSet map[string]bool

func (t topicSet) list() []string {
	out := []string{}
	for _, name := range allTopics {
		if t[name] {
			out = append(out, name)
		}
	}
	return out
}

// clientMessage is what a client sends: {"subscribe": ["jobs", ...]}
// replaces its topics; {"jobs": ["ID", ...]} asks for those jobs' state
// once, so a page that was offline learns how the jobs it watches went
// (a running job comes with the jobs topic anyway, an ended one would
// not). Both may come in one message.
type clientMessage struct {
	Subscribe *[]string `json:"subscribe"`
	Jobs      *[]string `json:"jobs"`
}

// clientRequest is a parsed client message: topics nil leaves them as
// they are.
type clientRequest struct {
	topics topicSet
	jobs   []string
}

// maxJobsAsked bounds the jobs one message may ask for: each answer is a
// message in the client's bounded queue, and half of it stays free for
// everything else.
const maxJobsAsked = 16

// parseClientMessage reads one client frame into what it asks for.
func parseClientMessage(data []byte) (clientRequest, error) {
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil || (m.Subscribe == nil && m.Jobs == nil) || dec.More() {
		return clientRequest{}, errors.New(`messages are {"subscribe": [topics]} or {"jobs": [job ids]}, or both in one; topics from ` + strings.Join(allTopics, ", "))
	}
	var req clientRequest
	if m.Jobs != nil {
		if len(*m.Jobs) > maxJobsAsked {
			return clientRequest{}, errors.New("jobs: at most " + itoa(maxJobsAsked) + " job ids in one message")
		}
		req.jobs = *m.Jobs
	}
	if m.Subscribe == nil {
		return req, nil
	}
	t := topicSet{}
	for _, name := range *m.Subscribe {
		if !slices.Contains(allTopics, name) {
			return clientRequest{}, errors.New("unknown topic " + quote(name) + "; topics are " + strings.Join(allTopics, ", "))
		}
		t[name] = true
	}
	req.topics = t
	return req, nil
}

// wsClient is one websocket. Only writeLoop writes data frames; close may
// run from any goroutine (gorilla allows WriteControl and Close
// concurrently with the writer).
type wsClient struct {
	ev   *events
	conn *websocket.Conn
	send chan []byte        // encoded messages for writeLoop; never closed
	in   chan clientRequest // subscriptions and job questions, readLoop to pump
	done chan struct{}      // closed once the client is being closed
	once sync.Once
}

// close sends a close frame with code and reason, as far as the socket
// takes it within WriteWait, and closes the socket. Only the first call
// counts.
func (c *wsClient) close(code int, reason string) { c.shut(code, reason, false) }

// drop closes a client that does not keep up, and counts it once.
func (c *wsClient) drop(reason string) { c.shut(websocket.ClosePolicyViolation, reason, true) }

func (c *wsClient) shut(code int, reason string, slow bool) {
	c.once.Do(func() {
		close(c.done)
		if slow {
			c.ev.dropped.Add(1)
		}
		msg := websocket.FormatCloseMessage(code, reason)
		_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(c.ev.opts.WriteWait))
		_ = c.conn.Close()
	})
}

// enqueue hands msg to writeLoop without waiting: a full buffer means the
// client stopped reading, and it is dropped.
func (c *wsClient) enqueue(msg []byte) bool {
	select {
	case c.send <- msg:
		return true
	default:
		c.drop("too slow: " + itoa(cap(c.send)) + " messages waited; reconnect")
		return false
	}
}

// readLoop reads frames until the socket fails or the read deadline
// passes. Every frame, pong or message, proves the client alive.
func (c *wsClient) readLoop() {
	defer c.close(websocket.CloseNormalClosure, "")
	wait := c.ev.opts.PongWait
	c.conn.SetReadLimit(maxClientMessage)
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(wait))
		req, err := parseClientMessage(data)
		if err != nil {
			c.enqueue(encode(map[string]string{"type": "error", "code": "bad_message", "error": err.Error()}))
			continue
		}
		select {
		case c.in <- req:
		case <-c.done:
			return
		}
	}
}

// writeLoop writes queued messages and pings, each within WriteWait. A
// write that fails or times out ends the client.
func (c *wsClient) writeLoop() {
	ping := time.NewTicker(c.ev.opts.PingInterval)
	defer ping.Stop()
	for {
		select {
		case msg := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(c.ev.opts.WriteWait))
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.writeFailed(err)
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.ev.opts.WriteWait)); err != nil {
				c.writeFailed(err)
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *wsClient) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.drop("too slow: a write waited " + c.ev.opts.WriteWait.String())
		return
	}
	c.close(websocket.CloseNormalClosure, "")
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
