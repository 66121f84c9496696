package gateway

import (
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// headReplayer is a ResponseWriter that can send again a response head it
// built for an earlier request (web/fastlane's writer does). The methods
// are those of that writer; see it for the details.
type headReplayer interface {
	RecordHead()
	RecordedHead() (head []byte, date int64, ok bool)
	ReplayHead(head []byte, status int, length int64) bool
}

// headMemo keeps the response heads of recent fast-lane hits, so that the
// next hit on the same entry in the same second sends the same bytes
// without setting, sorting, checking and rendering its fields again: a
// sixth of a 1 KiB hit's CPU and an eighth of a 100 KiB one's, measured.
//
// A hit's head is fixed by the entry's stored fields, status and body
// length, by its age and time to live in whole seconds, and by the second
// of the Date field when the entry has none of its own: headKey. Entries
// are never changed once stored (a revalidation stores a clone), so the
// identity of the stored field map stands for its contents; a memoized
// head keeps that map, not the entry, so that the map cannot be freed and
// its address reused while the key names it, and no body is kept alive
// by the memo.
//
// Slots are chosen by the map's address. A slot in use within the last
// second is not taken over: two hot entries on one slot would otherwise
// each record a head on every hit and replay none.
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
	fields   uintptr // identity of the entry's Header map
	status   int
	length   int
	age, ttl int64 // whole seconds, as sent; -1: not sent
	date     int64 // the Date field's second
}

type memoHead struct {
	key    headKey
	fields http.Header // keeps key.fields' map alive
	head   []byte
}

func (m *headMemo) slot(fields uintptr) *atomic.Pointer[memoHead] {
	h := uint64(fields) * 0x9E3779B97F4A7C15 // Fibonacci hashing: the top bits mix all of the address
	return &m.slots[h>>(64-headBits)]
}

// serveHit answers a GET for a fresh entry as serveCached does for a hit,
// sending the head memoized for the same key when there is one and
// memoizing the head it builds otherwise.
func (g *Gateway) serveHit(w *countingWriter, hr headReplayer, r *http.Request, up *upstream, e *cache.Entry, bodyFile cache.BodyFile, now time.Time, age time.Duration, start time.Time) string {
	k := headKey{
		fields: uintptr(reflect.ValueOf(e.Header).UnsafePointer()),
		status: e.Status,
		length: len(e.Body),
		age:    -1, // no Age field
		ttl:    -1,
		date:   now.Unix(),
	}
	if age >= 0 {
		k.age = wholeSeconds(age)
	}
	if !e.Never() {
		k.ttl = secondsLeft(e, now)
	}
	slot := g.heads.slot(k.fields)
	m := slot.Load()
	if m != nil && m.key == k && hr.ReplayHead(m.head, e.Status, int64(len(e.Body))) {
		w.status = e.Status
		writeBody(w, r, e, bodyFile)
		return g.countCached(w, up, e, Hit, now, start)
	}
	if m != nil && m.key.fields != k.fields && m.key.date >= k.date-1 {
		// Another entry's, in use: answer without memoizing.
		return g.serveCached(w, r, up, e, bodyFile, Hit, "hit", now, age, start)
	}
	hr.RecordHead()
	outcome := g.serveCached(w, r, up, e, bodyFile, Hit, "hit", now, age, start)
	// The head names this second in Date unless the entry has its own.
	if head, date, ok := hr.RecordedHead(); ok && (date == k.date || date < 0) {
		slot.Store(&memoHead{key: k, fields: e.Header, head: head})
	}
	return outcome
}
