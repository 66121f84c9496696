package gateway_test

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// ServeHit must answer a plain hit exactly as ServeHTTP does, and leave
// every other request to it without writing or counting anything.
func TestServeHitAnswersLikeServeHTTP(t *testing.T) {
	e := newEnv(t, policy(), nil, memory.New(0))
	e.get("/get?a=1", "MISS")
	e.get("/cache/60", "MISS")
	e.clock.Advance(3 * time.Second)

	req := func(method, target string, header ...string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		return r
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		before := e.gw.Stats().Snapshot().Upstreams["up"]
		fast := httptest.NewRecorder()
		if !e.gw.ServeHit(fast, req(method, "/fetch/up/get?a=1")) {
			t.Fatalf("%s: ServeHit declined a fresh entry held in memory", method)
		}
		mid := e.gw.Stats().Snapshot().Upstreams["up"]
		full := httptest.NewRecorder()
		e.gw.ServeHTTP(full, req(method, "/fetch/up/get?a=1"))
		after := e.gw.Stats().Snapshot().Upstreams["up"]
		// Each request has an ID of its own, which the lane, not
		// ServeHit, sends.
		full.Header().Del(gateway.RequestIDHeader)
		if fast.Code != full.Code || !reflect.DeepEqual(fast.Header(), full.Header()) || fast.Body.String() != full.Body.String() {
			t.Errorf("%s: ServeHit answered %d %v %q\nServeHTTP answered %d %v %q", method,
				fast.Code, fast.Header(), fast.Body, full.Code, full.Header(), full.Body)
		}
		if fast.Header().Get("X-Cache") != "HIT" || fast.Header().Get("Age") != "3" {
			t.Errorf("%s: X-Cache %q, Age %q", method, fast.Header().Get("X-Cache"), fast.Header().Get("Age"))
		}
		if mid.Hits-before.Hits != 1 || mid.Requests-before.Requests != 1 || after.Hits-mid.Hits != 1 || mid.BytesFromCache-before.BytesFromCache != after.BytesFromCache-mid.BytesFromCache {
			t.Errorf("%s: counted differently: before %+v, after ServeHit %+v, after ServeHTTP %+v", method, before, mid, after)
		}
	}

	for name, r := range map[string]*http.Request{
		"no-cache":        req("GET", "/fetch/up/get?a=1", "Cache-Control", "no-cache"),
		"max-age":         req("GET", "/fetch/up/get?a=1", "Cache-Control", "max-age=1"),
		"pragma":          req("GET", "/fetch/up/get?a=1", "Pragma", "no-cache"),
		"conditional":     req("GET", "/fetch/up/get?a=1", "If-None-Match", `"x"`),
		"range":           req("GET", "/fetch/up/get?a=1", "Range", "bytes=0-1"),
		"force refresh":   req("GET", "/fetch/up/get?a=1", cache.ForceRefreshHeader, "true"),
		"expire after":    req("GET", "/fetch/up/get?a=1", cache.ExpireAfterHeader, "60"),
		"post":            req("POST", "/fetch/up/get?a=1"),
		"not cached":      req("GET", "/fetch/up/get?a=2"),
		"unknown":         req("GET", "/fetch/nope/get?a=1"),
		"not below fetch": req("GET", "/get?a=1"),
		"credentials":     req("GET", "/fetch/up/get?a=1", "Authorization", "Bearer x"),
	} {
		before := e.gw.Stats().Snapshot()
		w := httptest.NewRecorder()
		if e.gw.ServeHit(w, r) {
			t.Errorf("%s: ServeHit answered it", name)
		}
		if len(w.Header()) > 0 || w.Body.Len() > 0 || w.Flushed {
			t.Errorf("%s: ServeHit declined but wrote %v %q", name, w.Header(), w.Body)
		}
		if after := e.gw.Stats().Snapshot(); !reflect.DeepEqual(after.Total, before.Total) {
			t.Errorf("%s: ServeHit declined but counted: %+v -> %+v", name, before.Total, after.Total)
		}
	}

	// Stale: the full path decides (revalidate, stale-while-revalidate...).
	e.clock.Advance(2 * time.Hour)
	if e.gw.ServeHit(httptest.NewRecorder(), req("GET", "/fetch/up/cache/60")) {
		t.Error("ServeHit answered from a stale entry")
	}
}

// An entry only on disk is for the full path: ServeHit never does I/O.
func TestServeHitOnlyFromMemory(t *testing.T) {
	db, err := sqlite.Open("sqlite://" + t.TempDir() + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, policy(), nil, db)
	e.get("/get", "MISS")
	if e.gw.ServeHit(httptest.NewRecorder(), httptest.NewRequest("GET", "/fetch/up/get", nil)) {
		t.Fatal("ServeHit answered from a backend that holds nothing in memory")
	}

	tiered := tiered.New(memory.New(0), 1<<20, time.Minute)
	e = newEnv(t, policy(), nil, tiered)
	e.get("/get", "MISS")
	if !e.gw.ServeHit(httptest.NewRecorder(), httptest.NewRequest("GET", "/fetch/up/get", nil)) {
		t.Fatal("ServeHit declined an entry in the hot tier")
	}
}

// fileTaker is a ResponseWriter that, like the fast lane's, takes a body
// offered with its file through ReadFrom.
type fileTaker struct {
	httptest.ResponseRecorder
	file syscall.Conn
}

func (w *fileTaker) ReadFrom(src io.Reader) (int64, error) {
	if fb, ok := src.(interface {
		BodyFile() (syscall.Conn, int64, int64)
	}); ok {
		w.file, _, _ = fb.BodyFile()
	}
	return io.Copy(&w.ResponseRecorder, src)
}

// A hit on a large body that the hot tier keeps in a file offers the file
// to the writer, for sendfile; a small body is written from memory.
func TestServeHitOffersTheBodyFile(t *testing.T) {
	cold, err := sqlite.Open("sqlite://" + filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	tier := tiered.New(cold, 64<<20, 0).FileBodies(t.TempDir(), 32<<10)
	e := newEnv(t, policy(), nil, tier)
	e.get("/bytes/50000?seed=1", "MISS")
	e.get("/bytes/1000?seed=1", "MISS")
	for _, c := range []struct {
		path     string
		size     int
		withFile bool
	}{{"/bytes/50000?seed=1", 50000, true}, {"/bytes/1000?seed=1", 1000, false}} {
		w := &fileTaker{ResponseRecorder: *httptest.NewRecorder()}
		if !e.gw.ServeHit(w, httptest.NewRequest("GET", "/fetch/up"+c.path, nil)) {
			t.Fatalf("%s: not answered as a hit", c.path)
		}
		if (w.file != nil) != c.withFile {
			t.Errorf("%s: file offered %v, want %v", c.path, w.file != nil, c.withFile)
		}
		want := e.get(c.path, "HIT")
		if w.Body.Len() != c.size || w.Body.String() != want.body || w.Header().Get("Content-Length") != want.header.Get("Content-Length") {
			t.Errorf("%s: %d bytes, Content-Length %q; want %d bytes as ServeHTTP sends them", c.path, w.Body.Len(), w.Header().Get("Content-Length"), c.size)
		}
	}
}

// replayRecorder is a ResponseRecorder that can record the head of an
// answer and send it again for another, as the fast lane's writer can.
// Its recorded "head" names the status and fields kept in heads.
type replayRecorder struct {
	httptest.ResponseRecorder
	heads    map[string]recordedHead
	date     int64 // the second the Date field it adds would name
	record   bool
	recorded string
	replayed bool
}

type recordedHead struct {
	status int
	header http.Header
}

func newReplayRecorder(heads map[string]recordedHead, now time.Time) *replayRecorder {
	return &replayRecorder{ResponseRecorder: *httptest.NewRecorder(), heads: heads, date: now.Unix()}
}

func (w *replayRecorder) RecordHead() { w.record = true }

func (w *replayRecorder) WriteHeader(code int) {
	if w.record && w.recorded == "" {
		w.recorded = strconv.Itoa(len(w.heads))
		w.heads[w.recorded] = recordedHead{code, w.Header().Clone()}
	}
	w.ResponseRecorder.WriteHeader(code)
}

func (w *replayRecorder) RecordedHead() ([]byte, int64, bool) {
	date := w.date
	if _, ok := w.heads[w.recorded].header["Date"]; ok {
		date = -1 // the stored response's own, not this second's
	}
	return []byte(w.recorded), date, w.recorded != ""
}

func (w *replayRecorder) ReplayHead(head []byte, status int, length int64) bool {
	h, ok := w.heads[string(head)]
	if !ok || h.status != status || h.header.Get("Content-Length") != strconv.FormatInt(length, 10) {
		panic("replayed a head that was not recorded for this answer")
	}
	maps.Copy(w.Header(), h.header)
	w.ResponseRecorder.WriteHeader(status)
	w.replayed = true
	return true
}

// A hit answered again within the same second, at the same age and time
// to live, sends the head recorded for the earlier answer; a new second,
// age or time to live, another entry or a HEAD request gets a head built
// anew. Either way the answer and the counters are those of ServeHTTP.
func TestServeHitReplaysTheHeadOfTheSameSecond(t *testing.T) {
	e := newEnv(t, policy(), nil, memory.New(0))
	e.get("/get?a=1", "MISS")
	e.get("/cache/60", "MISS")
	e.clock.Advance(3 * time.Second)
	heads := map[string]recordedHead{}

	type seen struct {
		sec      int64
		age, ttl string
	}
	last := map[string]seen{} // by path, for GETs
	replays := 0
	for i, c := range []struct {
		method, path string
		advance      time.Duration
	}{
		{"GET", "/get?a=1", 0},
		{"GET", "/get?a=1", 0},
		{"GET", "/get?a=1", 300 * time.Millisecond},
		{"GET", "/get?a=1", time.Second}, // a new Date, Age and time to live
		{"GET", "/get?a=1", 0},
		{"GET", "/cache/60", 0},
		{"GET", "/cache/60", 0},
		{"HEAD", "/get?a=1", 0},
	} {
		e.clock.Advance(c.advance)
		before := e.gw.Stats().Snapshot().Upstreams["up"]
		w := newReplayRecorder(heads, e.clock.Now())
		if !e.gw.ServeHit(w, httptest.NewRequest(c.method, "/fetch/up"+c.path, nil)) {
			t.Fatalf("%d: ServeHit declined a hit", i)
		}
		mid := e.gw.Stats().Snapshot().Upstreams["up"]
		full := httptest.NewRecorder()
		e.gw.ServeHTTP(full, httptest.NewRequest(c.method, "/fetch/up"+c.path, nil))
		after := e.gw.Stats().Snapshot().Upstreams["up"]
		full.Header().Del(gateway.RequestIDHeader) // see TestServeHitAnswersLikeServeHTTP

		now := seen{e.clock.Now().Unix(), full.Header().Get("Age"), full.Header().Get("Cache-Status")}
		prev, ok := last[c.path]
		want := c.method == "GET" && ok && prev == now
		if c.method == "GET" {
			last[c.path] = now
		}
		if w.replayed != want {
			t.Errorf("%d %s %s: head replayed %v, want %v (before: %+v, now: %+v)", i, c.method, c.path, w.replayed, want, prev, now)
		}
		if w.replayed {
			replays++
		}
		if w.Code != full.Code || !reflect.DeepEqual(w.Header(), full.Header()) || w.Body.String() != full.Body.String() {
			t.Errorf("%d: ServeHit answered %d %v %q\nServeHTTP answered %d %v %q", i, w.Code, w.Header(), w.Body, full.Code, full.Header(), full.Body)
		}
		if mid.Hits-before.Hits != 1 || mid.BytesFromCache-before.BytesFromCache != after.BytesFromCache-mid.BytesFromCache {
			t.Errorf("%d: counted differently: before %+v, after ServeHit %+v, after ServeHTTP %+v", i, before, mid, after)
		}
	}
	if replays < 3 {
		t.Errorf("%d heads replayed, want at least 3 (the second answer of each run of GETs)", replays)
	}
}
