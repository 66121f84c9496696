package gateway

import (
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
	"golang.org/x/net/http/httpguts"
)

// headMemo keeps the rendered heads of recent hits, so that the next hit
// on the same entry in the same second sends the same bytes without
// setting, sorting, checking and rendering its fields again.
//
// A hit's head is fixed by the entry's stored fields, status and body
// length, by its age and time to live in whole seconds, by the second of
// the Date field when the entry has none of its own, and by whether the
// upstream sends the entry headers: headKey. Entries are never changed
// once stored (a revalidation stores a clone), so the identity of the
// stored field map stands for its contents; a memoized head keeps that
// map, not the entry, so that the map cannot be freed and its address
// reused while the key names it, and no body is kept alive by the memo.
//
// Slots are chosen by the map's address. A slot in use within the last
// second is not taken over: two hot entries on one slot would otherwise
// each render a head on every hit and reuse none.
type headMemo struct {
	slots [headSlots]atomic.Pointer[memoHead]
}

// headSlots: room for a few thousand hot entries (about 1.5 MB of heads
// when all are taken).
const (
	headBits  = 12
	headSlots = 1 << headBits
)

type headKey struct {
	fields    uintptr // identity of the entry's Header map
	status    int
	length    int
	age, ttl  int64 // whole seconds, as sent; -1: not sent
	date      int64 // the Date field's second
	withEntry bool
}

type memoHead struct {
	key    headKey
	fields http.Header // keeps key.fields' map alive
	head   []byte
	idAt   int
}

func (m *headMemo) slot(fields uintptr) *atomic.Pointer[memoHead] {
	h := uint64(fields) * 0x9E3779B97F4A7C15 // Fibonacci hashing: the top bits mix all of the address
	return &m.slots[h>>(64-headBits)]
}

// hitHead returns the head of a hit on e, from the memo when it holds
// the same one, and where in it the request ID goes. wall is the time by
// the wall clock, which names the Date field as net/http's does.
func (g *Gateway) hitHead(up *upstream, e *cache.Entry, now time.Time, age time.Duration, wall time.Time) ([]byte, int) {
	k := headKey{
		fields:    uintptr(reflect.ValueOf(e.Header).UnsafePointer()),
		status:    e.Status,
		length:    len(e.Body),
		age:       -1, // no Age field
		ttl:       -1,
		date:      wall.Unix(),
		withEntry: up.Policy.EntryHeaders,
	}
	if age >= 0 {
		k.age = wholeSeconds(age)
	}
	if !e.Never() {
		k.ttl = secondsLeft(e, now)
	}
	slot := g.heads.slot(k.fields)
	m := slot.Load()
	if m != nil && m.key == k {
		return m.head, m.idAt
	}
	h := make(http.Header, len(e.Header)+6)
	setEntryFields(h, e, e.Header, Hit, cachedStatus(e, "hit", now), age, k.withEntry, true)
	head, idAt := appendHead(nil, e.Status, h, e.Body, wall)
	if m == nil || m.key.fields == k.fields || m.key.date < k.date-1 {
		slot.Store(&memoHead{key: k, fields: e.Header, head: head, idAt: idAt})
	}
	return head, idAt
}

// headRenderable reports whether appendHead renders the head of an answer
// from e as net/http would: a status with a body, and none of the fields
// that make net/http change the framing or the connection (the gateway
// does not store them, but an imported entry may hold anything).
func headRenderable(e *cache.Entry) bool {
	if !BodyAllowed(e.Status) || e.Status > 999 {
		return false
	}
	for k := range e.Header {
		switch {
		case k == "Transfer-Encoding", k == "Connection", k == "Trailer", strings.HasPrefix(k, http.TrailerPrefix):
			return false
		}
	}
	return true
}

// appendHead appends the head net/http's server writes for a handler
// that set the fields h (a valid Content-Length among them, no
// Transfer-Encoding, Connection or trailers), then wrote body whole, with
// a status that allows a body, on a keep-alive HTTP/1.1 connection at
// time wall. idAt is where a X-Request-Id field would go in net/http's
// sorted order; h's own X-Request-Id is left out.
//
// What net/http does, from its chunkWriter.writeHeader: the status line;
// the fields sorted by name, those with invalid names dropped, each value
// with CR and LF made spaces and then trimmed; then the fields it adds, in
// its order: Date when h has none, Content-Type sniffed from the body
// when h has none and no Content-Encoding.
func appendHead(b []byte, status int, h http.Header, body []byte, wall time.Time) (head []byte, idAt int) {
	b = append(b, "HTTP/1.1 "...)
	if text := http.StatusText(status); text != "" {
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = strconv.AppendInt(b, int64(status), 10)
		b = append(b, " status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	b = append(b, "\r\n"...)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	idAt = -1
	for _, k := range keys {
		if idAt < 0 && k > RequestIDHeader {
			idAt = len(b)
		}
		if k == RequestIDHeader || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			b = appendField(b, k, v)
		}
	}
	if idAt < 0 {
		idAt = len(b)
	}
	if _, ok := h["Date"]; !ok {
		b = appendField(b, "Date", httpDate(wall))
	}
	if _, ok := h["Content-Type"]; !ok && h.Get("Content-Encoding") == "" && len(body) > 0 {
		b = appendField(b, "Content-Type", http.DetectContentType(body))
	}
	return append(b, "\r\n"...), idAt
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = appendValue(b, v)
	return append(b, "\r\n"...)
}

// appendValue appends v as net/http writes a field value: CR and LF made
// spaces, then surrounding ASCII whitespace trimmed (so a CR or LF at
// either end goes too).
func appendValue(b []byte, v string) []byte {
	if !strings.ContainsAny(v, "\r\n") {
		return append(b, strings.Trim(v, " \t\r\n")...)
	}
	return append(b, strings.Trim(strings.NewReplacer("\r", " ", "\n", " ").Replace(v), " \t\r\n")...)
}

// httpDate formats t as the Date field, once per second.
func httpDate(t time.Time) string {
	sec := t.Unix()
	if d := lastDate.Load(); d != nil && d.sec == sec {
		return d.text
	}
	d := &dateText{sec: sec, text: t.UTC().Format(http.TimeFormat)}
	lastDate.Store(d)
	return d.text
}

type dateText struct {
	sec  int64
	text string
}

var lastDate atomic.Pointer[dateText]
