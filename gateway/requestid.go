package gateway

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
)

// RequestIDHeader carries a request's ID: taken from the client when it
// sends a sane one, generated otherwise, sent back on the answer and
// written in the access log line, so one request can be followed from
// the client's logs to the gateway's.
const RequestIDHeader = "X-Request-Id"

// maxRequestIDLen bounds an ID taken from a client: an ID is for finding
// a line, not for carrying data into the log.
const maxRequestIDLen = 128

// requestIDs generates request IDs: a random prefix drawn once per
// process, so that the IDs of several replicas (or of one restarted) do
// not collide, and a counter. That costs one atomic add per request where
// a random ID per request would cost a read of the random source.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	// Eight base-36 digits: enough that two processes hardly ever share
	// a prefix; the counter makes IDs unique within one.
	p := strconv.FormatUint(rand.Uint64N(36*36*36*36*36*36*36*36), 36)
	for len(p) < 8 {
		p = "0" + p
	}
	return &requestIDs{prefix: p + "-"}
}

// next returns a new ID, like "k3v9x0qa-1f".
func (ids *requestIDs) next() string {
	var buf [32]byte
	b := append(buf[:0], ids.prefix...)
	b = strconv.AppendUint(b, ids.n.Add(1), 36)
	return string(b)
}

// RequestID returns the ID of a request with header h: the client's
// X-Request-Id when it is sane (see saneRequestID), a new one otherwise.
func (g *Gateway) RequestID(h http.Header) string {
	if v := h[RequestIDHeader]; len(v) == 1 && saneRequestID(v[0]) {
		return v[0]
	}
	return g.requestIDs.next()
}

// saneRequestID reports whether a client's ID may be used as it is: at
// most maxRequestIDLen characters, each a letter, a digit or one of
// "-_.:+/=@". Anything else (spaces, quotes, control characters that
// could forge a log line, a whole document) is ignored and replaced by a
// generated ID.
func saneRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '+', c == '/', c == '=', c == '@':
		default:
			return false
		}
	}
	return true
}
