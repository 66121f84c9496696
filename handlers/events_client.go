package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

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
