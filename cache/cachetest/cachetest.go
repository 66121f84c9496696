// Package cachetest is the conformance suite every cache.Backend runs, in
// the manner of a-h/kv's tests.Run: a backend's own test file is a few
// lines that call Run with a function opening a fresh, empty backend.
//
//	func TestBackend(t *testing.T) {
//		cachetest.Run(t, func(t *testing.T) cache.Backend {
//			b := memory.New(0)
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// The suite calls open once per subtest, so cases never see each other's
// entries. It closes the backend itself only in the Close case; open should
// register its own cleanup and ignore the error of a second Close.
//
// Times must round-trip to within Precision (a millisecond), the
// resolution of the coarsest store we target (BSON dates). To keep
// ordering checks exact on such stores, the fixtures use times that are
// already whole milliseconds.
package cachetest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Precision is how closely a backend must round-trip times: a stored time
// read back may differ from the one put by less than this.
const Precision = time.Millisecond

// T0 is the base time of the suite's fixtures: a fixed instant in whole
// milliseconds, so that results do not depend on the wall clock.
var T0 = time.Date(2024, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

// Run runs the conformance suite against the backends open returns. open
// must return a new, empty backend each time it is called.
func Run(t *testing.T, open func(t *testing.T) cache.Backend) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, b cache.Backend)
	}{
		{"GetMiss", testGetMiss},
		{"RoundTrip", testRoundTrip},
		{"RoundTripEmptyAndNil", testRoundTripEmpty},
		{"RoundTripNeverExpires", testRoundTripNever},
		{"TimePrecision", testTimePrecision},
		{"PutReplacesWhole", testPutReplaces},
		{"CallerOwnsData", testCallerOwns},
		{"Delete", testDelete},
		{"RecordHits", testRecordHits},
		{"ListFilter", testListFilter},
		{"ListSort", testListSort},
		{"ListSortTies", testListSortTies},
		{"ListPagination", testListPagination},
		{"ListPaginationTies", testListPaginationTies},
		{"ListLimit", testListLimit},
		{"ListBadInput", testListBadInput},
		{"ListBody", testListBody},
		{"Count", testCount},
		{"DeleteMatching", testDeleteMatching},
		{"DeleteMatchingEmptyFilter", testDeleteMatchingAll},
		{"DeleteExpired", testDeleteExpired},
		{"Clear", testClear},
		{"Concurrent", testConcurrent},
		{"LargeBody", testLargeBody},
		{"RequestBody", testRequestBody},
		{"Capabilities", testCapabilities},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, open(t))
		})
	}
}

func testGetMiss(t *testing.T, b cache.Backend) {
	assertMiss(t, b, "missing")
	MustPut(t, b, NewEntry("present"))
	assertMiss(t, b, "missing")
	assertMiss(t, b, "presen") // a prefix of a stored key is still a miss
}

// fullEntry sets every field to a non-default value, with multi-valued
// headers and a body holding every byte value.
func fullEntry(key string) *cache.Entry {
	e := NewEntry(key)
	e.BaseKey = "base-" + key
	e.Upstream = "github"
	e.Method = http.MethodPost
	e.URL = "https://api.github.com/repos/o/r?a=1&b=%20x&c=ü"
	e.RequestHeader = http.Header{"Accept": {"application/json"}, "X-Multi": {"one", "two"}}
	e.RequestBody = []byte(`{"query":"ü","n":1}` + "\x00\xff")
	e.Status = http.StatusCreated
	e.Header = http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Set-Cookie":    {"a=1", "b=2"},
		"Cache-Control": {"max-age=60"},
		"X-Unicode":     {"héllo ✓"},
	}
	body := make([]byte, 512)
	for i := range body {
		body[i] = byte(i)
	}
	SetBody(e, body)
	e.ContentType = "application/octet-stream"
	e.RequestTime = T0.Add(-123 * time.Millisecond)
	e.Created = T0
	e.Expires = T0.Add(90 * time.Minute)
	e.ETag = `W/"xyz"`
	e.LastModified = "Mon, 01 Jan 2024 00:00:00 GMT"
	e.Hits = 7
	e.LastHit = T0.Add(time.Minute)
	e.Reason = "Cache-Control: max-age=60"
	return e
}

func testRoundTrip(t *testing.T, b cache.Backend) {
	want := fullEntry("k1")
	MustPut(t, b, want, NewEntry("k2"))
	if d := Diff(MustGet(t, b, "k1"), want); d != "" {
		t.Fatalf("Get(k1) differs from what was put: %s", d)
	}
	if d := Diff(MustGet(t, b, "k2"), NewEntry("k2")); d != "" {
		t.Fatalf("Get(k2) differs from what was put: %s", d)
	}
}

func testRoundTripEmpty(t *testing.T, b cache.Backend) {
	e := NewEntry("empty")
	SetBody(e, []byte{})
	e.Header = nil
	e.RequestHeader = nil
	e.ETag, e.LastModified, e.Reason, e.ContentType = "", "", "", ""
	e.RequestTime, e.LastHit = time.Time{}, time.Time{}
	MustPut(t, b, e)
	got := MustGet(t, b, "empty")
	if d := Diff(got, e); d != "" {
		t.Fatalf("Get(empty) differs: %s", d)
	}
	if len(got.Body) != 0 || got.Size != 0 {
		t.Fatalf("empty body came back as %d bytes, Size %d", len(got.Body), got.Size)
	}
	if !got.RequestTime.IsZero() || !got.LastHit.IsZero() {
		t.Fatalf("zero times came back as RequestTime=%v LastHit=%v", got.RequestTime, got.LastHit)
	}
}

func testRoundTripNever(t *testing.T, b cache.Backend) {
	e := NewEntry("never")
	e.Expires = time.Time{}
	MustPut(t, b, e)
	got := MustGet(t, b, "never")
	if !got.Expires.IsZero() || !got.Never() {
		t.Fatalf("Expires = %v, want the zero Time (never)", got.Expires)
	}
	if got.IsExpired(T0.AddDate(100, 0, 0)) {
		t.Fatalf("never-expiring entry reported expired a century later")
	}
}

func testTimePrecision(t *testing.T, b cache.Backend) {
	// Sub-millisecond parts and a non-UTC zone: the backend may drop the
	// former (up to Precision) and the zone, but not the instant.
	zone := time.FixedZone("X", 5*3600+30*60)
	e := NewEntry("t")
	e.Created = time.Date(2030, 6, 7, 8, 9, 10, 123_456_789, zone)
	e.RequestTime = e.Created.Add(-time.Nanosecond)
	e.Expires = time.Date(2199, 12, 31, 23, 59, 59, 999_000_000, zone)
	e.LastHit = time.Now() // carries a monotonic reading
	MustPut(t, b, e)
	if d := Diff(MustGet(t, b, "t"), e); d != "" {
		t.Fatalf("times did not round-trip to within %v: %s", Precision, d)
	}
}

func testPutReplaces(t *testing.T, b cache.Backend) {
	first := fullEntry("k")
	second := NewEntry("k")
	SetBody(second, []byte("second"))
	second.Header = http.Header{"X-Only": {"second"}}
	second.RequestHeader = nil
	second.ETag, second.LastModified = "", ""
	second.Expires = time.Time{}
	MustPut(t, b, first, second)
	if d := Diff(MustGet(t, b, "k"), second); d != "" {
		t.Fatalf("after replacing Put, Get(k) differs from the second entry: %s", d)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot != (cache.Totals{Entries: 1, Bytes: 6}) {
		t.Fatalf("Count after replace = %+v, want 1 entry of 6 bytes", tot)
	}
}

func testCallerOwns(t *testing.T, b cache.Backend) {
	e := NewEntry("k")
	MustPut(t, b, e)
	// Mutating what was put must not reach the store.
	e.Body[0] = 'X'
	e.Header.Set("Content-Type", "text/evil")
	e.RequestHeader.Set("Accept", "evil")
	got := MustGet(t, b, "k")
	if d := Diff(got, NewEntry("k")); d != "" {
		t.Fatalf("mutating the put entry changed the stored one: %s", d)
	}
	// Nor must mutating what was got.
	got.Body[0] = 'Y'
	got.Header.Set("Content-Type", "text/evil")
	got.Header["Etag"][0] = "evil"
	if d := Diff(MustGet(t, b, "k"), NewEntry("k")); d != "" {
		t.Fatalf("mutating a got entry changed the stored one: %s", d)
	}
}

func testDelete(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	MustPut(t, b, NewEntry("a"), NewEntry("b"))
	if ok, err := b.Delete(ctx, "a"); err != nil || !ok {
		t.Fatalf("Delete(a) = %v, %v; want true, nil", ok, err)
	}
	assertMiss(t, b, "a")
	if ok, err := b.Delete(ctx, "a"); err != nil || ok {
		t.Fatalf("second Delete(a) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := b.Delete(ctx, "never-stored"); err != nil || ok {
		t.Fatalf("Delete(never-stored) = %v, %v; want false, nil", ok, err)
	}
	MustGet(t, b, "b")
	if tot := mustCount(t, b, cache.Filter{}); tot.Entries != 1 || tot.Bytes != NewEntry("b").Size {
		t.Fatalf("Count after delete = %+v, want only b", tot)
	}
}

func testRecordHits(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	e := NewEntry("k")
	e.Hits = 2
	e.LastHit = T0
	MustPut(t, b, e, NewEntry("other"))
	t1 := T0.Add(time.Minute)
	err := b.RecordHits(ctx, []cache.Hit{
		{Key: "k", Count: 3, Last: t1},
		{Key: "gone", Count: 1, Last: t1},
	})
	if err != nil {
		t.Fatalf("RecordHits: %v", err)
	}
	got := MustGet(t, b, "k")
	if got.Hits != 5 || got.LastHit.Sub(t1).Abs() >= Precision {
		t.Fatalf("after RecordHits: Hits=%d LastHit=%v; want 5, %v", got.Hits, got.LastHit, t1)
	}
	assertMiss(t, b, "gone") // hits for unknown keys must not create entries
	if o := MustGet(t, b, "other"); o.Hits != 0 || !o.LastHit.IsZero() {
		t.Fatalf("other entry got hits: %d, %v", o.Hits, o.LastHit)
	}

	// Two hits on one key in one batch both count.
	t2 := t1.Add(time.Minute)
	if err := b.RecordHits(ctx, []cache.Hit{{Key: "k", Count: 1, Last: t1}, {Key: "k", Count: 1, Last: t2}}); err != nil {
		t.Fatalf("RecordHits: %v", err)
	}
	got = MustGet(t, b, "k")
	if got.Hits != 7 || got.LastHit.Sub(t2).Abs() >= Precision {
		t.Fatalf("after second RecordHits: Hits=%d LastHit=%v; want 7, %v", got.Hits, got.LastHit, t2)
	}
	if err := b.RecordHits(ctx, nil); err != nil {
		t.Fatalf("RecordHits(nil): %v", err)
	}
	// Listing sees the new counts.
	p, err := b.List(ctx, cache.Query{Sort: cache.Sort{Field: cache.SortHits, Desc: true}})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if got := keysOf(p.Entries); !slices.Equal(got, []string{"k", "other"}) || p.Entries[0].Hits != 7 {
		t.Fatalf("List by hits desc = %v (first Hits %d), want [k other] with 7 hits", got, p.Entries[0].Hits)
	}
}

func testLargeBody(t *testing.T, b cache.Backend) {
	body := make([]byte, 2<<20)
	x := uint32(2463534242)
	for i := range body { // xorshift: incompressible and reproducible
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		body[i] = byte(x)
	}
	e := SetBody(NewEntry("big"), body)
	MustPut(t, b, e)
	got := MustGet(t, b, "big")
	if !bytes.Equal(got.Body, body) || got.Size != int64(len(body)) {
		t.Fatalf("2 MiB body did not round-trip: got %d bytes, Size %d", len(got.Body), got.Size)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot.Bytes != int64(len(body)) {
		t.Fatalf("Count bytes = %d, want %d", tot.Bytes, len(body))
	}
}

func testClose(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	MustPut(t, b, NewEntry("k"))
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, cache.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want one wrapping cache.ErrClosed", op, err)
		}
	}
	_, _, err := b.Get(ctx, "k")
	check("Get", err)
	check("Put", b.Put(ctx, NewEntry("k2")))
	_, err = b.Delete(ctx, "k")
	check("Delete", err)
	check("RecordHits", b.RecordHits(ctx, []cache.Hit{{Key: "k", Count: 1, Last: T0}}))
	_, err = b.List(ctx, cache.Query{})
	check("List", err)
	_, err = b.Count(ctx, cache.Filter{})
	check("Count", err)
	_, err = b.DeleteMatching(ctx, cache.Filter{})
	check("DeleteMatching", err)
	_, err = b.DeleteExpired(ctx, T0)
	check("DeleteExpired", err)
	check("Clear", b.Clear(ctx))
}

// testRequestBody checks that the request body of a non-GET entry is
// stored beside the response, apart from it: an admin revalidation sends
// it again, so a backend that dropped it would have a cached POST
// revalidated with an empty body.
func testRequestBody(t *testing.T, b cache.Backend) {
	ctx := context.Background()
	reqBody := make([]byte, 1<<20)
	for i := range reqBody {
		reqBody[i] = byte(i * 7)
	}
	post := NewEntry("post")
	post.Method = http.MethodPost
	post.RequestBody = reqBody
	get := NewEntry("get")
	MustPut(t, b, post, get)

	got := MustGet(t, b, "post")
	if d := Diff(got, post); d != "" {
		t.Fatalf("Get(post) differs from what was put: %s", d)
	}
	if len(got.RequestBody) != len(reqBody) {
		t.Fatalf("RequestBody came back as %d bytes, want %d", len(got.RequestBody), len(reqBody))
	}
	if g := MustGet(t, b, "get"); len(g.RequestBody) != 0 {
		t.Fatalf("an entry put without a request body came back with %d bytes of one", len(g.RequestBody))
	}
	// The request body is not the response: Size and the totals leave it out.
	if got.Size != post.Size {
		t.Fatalf("Size = %d, want %d (the response body only)", got.Size, post.Size)
	}
	if tot := mustCount(t, b, cache.Filter{}); tot.Bytes != post.Size+get.Size {
		t.Fatalf("Count bytes = %d, want %d (response bodies only)", tot.Bytes, post.Size+get.Size)
	}

	for _, withBody := range []bool{false, true} {
		p, err := b.List(ctx, cache.Query{Filter: cache.Filter{Keys: []string{"post"}}, WithBody: withBody})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(p.Entries) != 1 {
			t.Fatalf("List(WithBody %v) gave %d entries, want 1", withBody, len(p.Entries))
		}
		e := p.Entries[0]
		switch {
		case withBody && !bytes.Equal(e.RequestBody, reqBody):
			t.Fatalf("List(WithBody): RequestBody is %d bytes, want %d", len(e.RequestBody), len(reqBody))
		case !withBody && e.RequestBody != nil:
			t.Fatalf("List without WithBody: RequestBody is %d bytes, want nil", len(e.RequestBody))
		}
	}

	// The caller owns what it put and what it got.
	want := bytes.Clone(reqBody)
	post.RequestBody[0] ^= 0xff
	got.RequestBody[1] ^= 0xff
	if g := MustGet(t, b, "post"); !bytes.Equal(g.RequestBody, want) {
		t.Fatalf("mutating a put or a got request body changed the stored one")
	}

	// A Put replaces the entry whole, request body included.
	replaced := NewEntry("post")
	MustPut(t, b, replaced)
	if g := MustGet(t, b, "post"); len(g.RequestBody) != 0 {
		t.Fatalf("after a Put without a request body, Get has %d bytes of the old one", len(g.RequestBody))
	}

	if bp, ok := b.(cache.BatchPutter); ok {
		many := NewEntry("many")
		many.Method = http.MethodPut
		many.RequestBody = []byte("put body")
		if err := bp.PutMany(ctx, []*cache.Entry{many, NewEntry("plain")}); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		if d := Diff(MustGet(t, b, "many"), many); d != "" {
			t.Fatalf("PutMany: Get(many) differs: %s", d)
		}
	}
}
