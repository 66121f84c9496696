package gateway_test

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/backends/sqlite"
	"github.com/cachegate/cachegate/backends/tiered"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// wire is an Answer as a door writes it to its connection.
func wire(a gateway.Answer) []byte {
	var b []byte
	b = append(b, a.Head[:a.IDAt]...)
	if a.RequestID != "" {
		b = append(b, gateway.RequestIDHeader+": "+a.RequestID+"\r\n"...)
	}
	b = append(b, a.Head[a.IDAt:]...)
	return append(b, a.Body...)
}

// rawGet sends a GET for target to the plain net/http server at addr and
// returns the bytes of its answer.
func rawGet(t *testing.T, addr, target string, header ...string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET " + target + " HTTP/1.1\r\nHost: t\r\n"
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	if _, err := io.WriteString(c, req+"Connection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	// net/http says Connection: close to a request that asked for it,
	// which a lane never answers: the field is not the answer's.
	return bytes.Replace(b, []byte("Connection: close\r\n"), nil, 1)
}

var (
	dateField = regexp.MustCompile(`(?m)^Date: .*\r\n`)
	idField   = regexp.MustCompile(`(?m)^X-Request-Id: .*\r\n`)
)

// sameButDate compares two answers but for their Date and the value of
// their X-Request-Id (generated per request when the client sends none):
// the field must still be there, in the same place.
func sameButDate(a, b []byte) bool {
	norm := func(b []byte) string {
		return idField.ReplaceAllString(dateField.ReplaceAllString(string(b), "Date: *\r\n"), "X-Request-Id: *\r\n")
	}
	return norm(a) == norm(b)
}

// Lookup must answer a plain hit with the bytes and counts ServeHTTP gives
// it through net/http, and leave every other request to ServeHTTP
// without counting anything.
func TestLookupAnswersLikeServeHTTP(t *testing.T) {
	e := newEnv(t, policy(func(p *cache.Policy) { p.EntryHeaders = true }), nil, memory.New(0))
	plain := httptest.NewServer(e.gw)
	defer plain.Close()
	addr := plain.Listener.Addr().String()
	e.get("/get?a=1", "MISS")
	e.get("/cache/60", "MISS")
	e.clock.Advance(3 * time.Second)

	for _, c := range []struct {
		target string
		header []string
	}{
		{"/fetch/up/get?a=1", nil},
		{"/fetch/up/cache/60", []string{gateway.RequestIDHeader, "req-42"}},
	} {
		r := httptest.NewRequest("GET", c.target, nil)
		for i := 0; i+1 < len(c.header); i += 2 {
			r.Header.Set(c.header[i], c.header[i+1])
		}
		before := e.gw.Stats().Snapshot().Upstreams["up"]
		a, ok := e.gw.Lookup(r)
		if !ok {
			t.Fatalf("%s: Lookup declined a fresh entry held in memory", c.target)
		}
		a.Done(int64(len(a.Body)))
		mid := e.gw.Stats().Snapshot().Upstreams["up"]
		full := rawGet(t, addr, c.target, c.header...)
		after := e.gw.Stats().Snapshot().Upstreams["up"]
		if got := wire(a); !sameButDate(got, full) {
			t.Errorf("%s: Lookup's answer\n%s\nnet/http's through ServeHTTP\n%s", c.target, got, full)
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(wire(a))), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-Cache") != "HIT" || resp.Header.Get("Age") != "3" || resp.Header.Get(gateway.EntryKeyHeader) == "" {
			t.Errorf("%s: X-Cache %q, Age %q, key %q", c.target, resp.Header.Get("X-Cache"), resp.Header.Get("Age"), resp.Header.Get(gateway.EntryKeyHeader))
		}
		if len(c.header) > 0 && resp.Header.Get(gateway.RequestIDHeader) != c.header[1] {
			t.Errorf("%s: X-Request-Id %q, want the request's", c.target, resp.Header.Get(gateway.RequestIDHeader))
		}
		if mid.Hits-before.Hits != 1 || mid.Requests-before.Requests != 1 || after.Hits-mid.Hits != 1 ||
			mid.BytesFromCache-before.BytesFromCache != after.BytesFromCache-mid.BytesFromCache || mid.BytesFromCache == before.BytesFromCache {
			t.Errorf("%s: counted differently: before %+v, after Lookup %+v, after ServeHTTP %+v", c.target, before, mid, after)
		}
	}

	req := func(method, target string, header ...string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		return r
	}
	for name, r := range map[string]*http.Request{
		"head":            req("HEAD", "/fetch/up/get?a=1"),
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
		if _, ok := e.gw.Lookup(r); ok {
			t.Errorf("%s: Lookup answered it", name)
		}
		if after := e.gw.Stats().Snapshot(); !reflect.DeepEqual(after.Total, before.Total) {
			t.Errorf("%s: Lookup declined but counted: %+v -> %+v", name, before.Total, after.Total)
		}
	}

	// Stale: ServeHTTP decides (revalidate, stale-while-revalidate...).
	e.clock.Advance(2 * time.Hour)
	if _, ok := e.gw.Lookup(req("GET", "/fetch/up/cache/60")); ok {
		t.Error("Lookup answered from a stale entry")
	}
}

// An entry only on disk is for ServeHTTP: Lookup never does I/O.
func TestLookupOnlyFromMemory(t *testing.T) {
	db, err := sqlite.Open("sqlite://" + t.TempDir() + "/c.db")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, policy(), nil, db)
	e.get("/get", "MISS")
	if _, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up/get", nil)); ok {
		t.Fatal("Lookup answered from a backend that holds nothing in memory")
	}

	tiered := tiered.New(memory.New(0), 1<<20, time.Minute)
	e = newEnv(t, policy(), nil, tiered)
	e.get("/get", "MISS")
	if _, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up/get", nil)); !ok {
		t.Fatal("Lookup declined an entry in the hot tier")
	}
}

// A hit on a large body that the hot tier keeps in a file offers the file,
// for sendfile; a small body comes from memory only.
func TestLookupOffersTheBodyFile(t *testing.T) {
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
		a, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up"+c.path, nil))
		if !ok {
			t.Fatalf("%s: not answered as a hit", c.path)
		}
		if (a.File != nil) != c.withFile {
			t.Errorf("%s: file offered %v, want %v", c.path, a.File != nil, c.withFile)
		}
		want := e.get(c.path, "HIT")
		if string(a.Body) != want.body || len(a.Body) != c.size {
			t.Errorf("%s: %d bytes; want %d bytes as ServeHTTP sends them", c.path, len(a.Body), c.size)
		}
		if a.File != nil {
			fromFile := make([]byte, c.size)
			if _, err := a.File.ReadAt(fromFile, 0); err != nil || !bytes.Equal(fromFile, a.Body) {
				t.Errorf("%s: the file does not hold the body (%v)", c.path, err)
			}
		}
	}
}

// A hit answered again within the same second, at the same age and time
// to live, reuses the head rendered for the earlier one; a new second, age
// or time to live, or another entry gets a head rendered anew. Either way
// the head is the one ServeHTTP's answer has.
func TestLookupReusesTheHeadOfTheSameSecond(t *testing.T) {
	e := newEnv(t, policy(), nil, memory.New(0))
	plain := httptest.NewServer(e.gw)
	defer plain.Close()
	e.get("/get?a=1", "MISS")
	e.get("/cache/60", "MISS")
	e.clock.Advance(3 * time.Second)

	last := map[string]gateway.Answer{}
	reused := 0
	for i, c := range []struct {
		path    string
		advance time.Duration
	}{
		{"/get?a=1", 0},
		{"/get?a=1", 0},
		{"/get?a=1", 300 * time.Millisecond},
		{"/get?a=1", time.Second}, // a new Age and time to live
		{"/get?a=1", 0},
		{"/cache/60", 0},
		{"/cache/60", 0},
	} {
		e.clock.Advance(c.advance)
		a, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up"+c.path, nil))
		if !ok {
			t.Fatalf("%d: Lookup declined a hit", i)
		}
		full := rawGet(t, plain.Listener.Addr().String(), "/fetch/up"+c.path)
		if !sameButDate(wire(a), full) {
			t.Errorf("%d: Lookup's answer\n%s\nServeHTTP's\n%s", i, wire(a), full)
		}
		prev, seen := last[c.path]
		sameHead := seen && bytes.Equal(prev.Head, a.Head)
		if sameHead != (seen && &prev.Head[0] == &a.Head[0]) {
			t.Errorf("%d: an equal head was rendered again, or a memoized one differs", i)
		}
		if sameHead {
			reused++
		}
		if seen && c.advance >= time.Second && &prev.Head[0] == &a.Head[0] {
			t.Errorf("%d: a head of another second's Age reused", i)
		}
		last[c.path] = a
	}
	if reused < 3 {
		t.Errorf("%d heads reused, want at least 3 (the second answer of each run)", reused)
	}
}

// TestLookupDeclinesHeadsItCannotRender: an imported entry may hold
// fields that make net/http change an answer's framing, which Answer's
// head does not model; such entries are answered by ServeHTTP.
func TestLookupDeclinesHeadsItCannotRender(t *testing.T) {
	b := memory.New(0)
	e := newEnv(t, policy(), nil, b)
	e.get("/get?a=1", "MISS")
	entries := e.entries()
	if len(entries) != 1 {
		t.Fatalf("%d entries", len(entries))
	}
	for _, field := range []string{"Transfer-Encoding", "Connection", "Trailer"} {
		odd := entries[0].Clone()
		odd.Header.Set(field, "x")
		if err := b.Put(t.Context(), odd); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up/get?a=1", nil)); ok {
			t.Errorf("Lookup answered an entry with %s", field)
		}
	}
	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		odd := entries[0].Clone()
		odd.Status = status
		if err := b.Put(t.Context(), odd); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.gw.Lookup(httptest.NewRequest("GET", "/fetch/up/get?a=1", nil)); ok {
			t.Errorf("Lookup answered a %s entry", strconv.Itoa(status))
		}
	}
}
