package gateway_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/cachegate/cachegate/backends/memory"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
)

// plainBody is what the coding upstream sends, before any coding.
var plainBody = strings.Repeat("the quick brown fox jumps over the lazy dog\n", 200)

// codingUpstream answers plainBody, compressed with the coding the request
// prefers (br, then gzip) or, when always is set, with that coding whatever
// the request accepts, as some servers do. It records the Accept-Encoding
// of every request it sees.
type codingUpstream struct {
	vary    bool   // send Vary: Accept-Encoding
	always  string // "gzip" or "br": ignore Accept-Encoding
	corrupt bool   // send bytes that are not what Content-Encoding says
	status  int    // 200 when zero

	mu   sync.Mutex
	seen []string
}

func (u *codingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ae := strings.Join(r.Header.Values("Accept-Encoding"), ", ")
	u.mu.Lock()
	u.seen = append(u.seen, ae)
	u.mu.Unlock()
	coding := u.always
	if coding == "" {
		switch {
		case strings.Contains(ae, "br"):
			coding = "br"
		case strings.Contains(ae, "gzip"):
			coding = "gzip"
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("ETag", `"v1"`)
	if u.vary {
		h.Set("Vary", "Accept-Encoding")
	}
	var body []byte
	switch {
	case u.corrupt:
		h.Set("Content-Encoding", coding)
		body = []byte("\x1f\x8b\x08\x00this is not a gzip stream")
	case coding == "gzip":
		h.Set("Content-Encoding", "gzip")
		body = gzipBytes(plainBody)
	case coding == "br":
		h.Set("Content-Encoding", "br")
		var buf bytes.Buffer
		bw := brotli.NewWriter(&buf)
		_, _ = bw.Write([]byte(plainBody))
		_ = bw.Close()
		body = buf.Bytes()
	default:
		body = []byte(plainBody)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	status := u.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (u *codingUpstream) calls() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.seen...)
}

func gzipBytes(s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write([]byte(s))
	_ = zw.Close()
	return buf.Bytes()
}

// rawTransport never adds an Accept-Encoding nor decodes: the test sees
// the bytes the gateway sends.
var rawTransport = &http.Transport{DisableCompression: true}

// raw sends a request through the gateway with exactly the given headers
// (and no Accept-Encoding unless given).
func (e *env) raw(method, path string, header ...string) result {
	e.t.Helper()
	return e.roundTrip(rawTransport, method, path, nil, header...)
}

// plainOf decodes a response body as its Content-Encoding says.
func plainOf(t *testing.T, r result) string {
	t.Helper()
	switch ce := r.header.Get("Content-Encoding"); ce {
	case "":
		return r.body
	case "gzip":
		zr, err := gzip.NewReader(strings.NewReader(r.body))
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("gzip body: %v", err)
		}
		return string(b)
	case "br":
		b, err := io.ReadAll(brotli.NewReader(strings.NewReader(r.body)))
		if err != nil {
			t.Fatalf("br body: %v", err)
		}
		return string(b)
	default:
		t.Fatalf("unexpected Content-Encoding %q", ce)
		return ""
	}
}

func TestEquivalentAcceptEncodingsShareOneEntry(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vary   bool
		policy cache.Policy
	}{
		{"response varies on Accept-Encoding", true, policy()},
		{"match_headers lists it", false, policy(func(p *cache.Policy) { p.MatchHeaders = []string{"accept-encoding"} })},
		{"match_headers true", false, policy(func(p *cache.Policy) { p.MatchAllHeaders = true })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &codingUpstream{vary: tc.vary}
			e := newEnv(t, tc.policy, up, nil)
			steps := []struct{ accept, xcache, coding string }{
				{"gzip, deflate, br", gateway.Miss, "br"},
				{"br, gzip", gateway.Hit, "br"},
				{"deflate, gzip;q=0.5, BR;q=1.0", gateway.Hit, "br"},
				{"*", gateway.Miss, "br"}, // br, gzip and zstd
				{"gzip", gateway.Miss, "gzip"},
				{"x-gzip, br;q=0", gateway.Hit, "gzip"},
				{"gzip, deflate", gateway.Hit, "gzip"},
			}
			for _, s := range steps {
				r := e.raw(http.MethodGet, "/text", "Accept-Encoding", s.accept)
				if got := r.xcache(); got != s.xcache {
					t.Fatalf("Accept-Encoding %q: X-Cache = %q, want %q (Cache-Status %q)", s.accept, got, s.xcache, r.header.Get("Cache-Status"))
				}
				if got := r.header.Get("Content-Encoding"); got != s.coding {
					t.Fatalf("Accept-Encoding %q: Content-Encoding = %q, want %q", s.accept, got, s.coding)
				}
				if got := plainOf(t, r); got != plainBody {
					t.Fatalf("Accept-Encoding %q: body decodes to %d bytes, want the %d sent", s.accept, len(got), len(plainBody))
				}
			}
			if got, want := len(up.calls()), 3; got != want {
				t.Fatalf("upstream calls = %d (%q), want %d", got, up.calls(), want)
			}
			for _, en := range e.entries() {
				if got := en.RequestHeader.Get("Accept-Encoding"); got != "br, gzip" && got != "gzip" && got != "br, gzip, zstd" {
					t.Errorf("stored request Accept-Encoding = %q, want the normalised form", got)
				}
			}
		})
	}
}

func TestClientWithoutTheCodingGetsTheBodyDecoded(t *testing.T) {
	for _, tc := range []struct {
		coding  string
		backend func() cache.Backend // nil: the tests' default
	}{
		{"gzip", nil},
		{"br", nil},
		// Hits held in memory are answered by the fast lane (Lookup),
		// which must leave these to ServeHTTP.
		{"gzip", func() cache.Backend { return memory.New(0) }},
	} {
		coding := tc.coding
		name := coding
		var backend cache.Backend
		if tc.backend != nil {
			backend = tc.backend()
			name += " in memory"
		}
		t.Run(name, func(t *testing.T) {
			up := &codingUpstream{always: coding}
			e := newEnv(t, policy(), up, backend)
			r := e.raw(http.MethodGet, "/text", "Accept-Encoding", "gzip, br")
			if r.xcache() != gateway.Miss || r.header.Get("Content-Encoding") != coding {
				t.Fatalf("first answer: X-Cache %q, Content-Encoding %q", r.xcache(), r.header.Get("Content-Encoding"))
			}
			if got, want := r.header.Get("ETag"), `"v1"`; got != want {
				t.Fatalf("encoded answer ETag = %q, want %q", got, want)
			}
			for _, accept := range [][]string{
				nil, // no Accept-Encoding at all
				{"Accept-Encoding", ""},
				{"Accept-Encoding", "deflate"},
				{"Accept-Encoding", coding + ";q=0, identity"},
				{"Accept-Encoding", "*;q=0.5, " + coding + ";q=0"},
			} {
				r := e.raw(http.MethodGet, "/text", accept...)
				if r.status != http.StatusOK || r.xcache() != gateway.Hit {
					t.Fatalf("%q: status %d, X-Cache %q, want 200 HIT", accept, r.status, r.xcache())
				}
				if got := r.header.Get("Content-Encoding"); got != "" {
					t.Fatalf("%q: Content-Encoding = %q, want none", accept, got)
				}
				if r.body != plainBody {
					t.Fatalf("%q: body is %d bytes %.20q, want the %d decoded", accept, len(r.body), r.body, len(plainBody))
				}
				if got, want := r.header.Get("Content-Length"), strconv.Itoa(len(plainBody)); got != want {
					t.Fatalf("%q: Content-Length = %s, want %s", accept, got, want)
				}
				if got, want := r.header.Get("ETag"), `W/"v1"`; got != want {
					t.Fatalf("%q: ETag = %q, want %q", accept, got, want)
				}
			}
			// A client that accepts the coding still gets the stored bytes.
			r = e.raw(http.MethodGet, "/text", "Accept-Encoding", coding)
			if r.xcache() != gateway.Hit || r.header.Get("Content-Encoding") != coding || plainOf(t, r) != plainBody {
				t.Fatalf("client with %s: X-Cache %q, Content-Encoding %q", coding, r.xcache(), r.header.Get("Content-Encoding"))
			}
			// HEAD, ranges and conditionals are answered from the decoded body.
			h := e.raw(http.MethodHead, "/text")
			if got, want := h.header.Get("Content-Length"), strconv.Itoa(len(plainBody)); got != want || h.header.Get("Content-Encoding") != "" {
				t.Fatalf("HEAD: Content-Length %s, Content-Encoding %q; want %s and none", got, h.header.Get("Content-Encoding"), want)
			}
			rg := e.raw(http.MethodGet, "/text", "Range", "bytes=4-8")
			if rg.status != http.StatusPartialContent || rg.body != plainBody[4:9] {
				t.Fatalf("Range: status %d, body %q; want 206 %q", rg.status, rg.body, plainBody[4:9])
			}
			nm := e.raw(http.MethodGet, "/text", "If-None-Match", `W/"v1"`)
			if nm.status != http.StatusNotModified {
				t.Fatalf("If-None-Match the weak ETag: status %d, want 304", nm.status)
			}
			if got := len(up.calls()); got != 1 {
				t.Fatalf("upstream calls = %d, want 1: every answer came from the one entry", got)
			}
		})
	}
}

func TestMissForAClientWithoutTheCodingIsDecoded(t *testing.T) {
	up := &codingUpstream{always: "gzip"}
	e := newEnv(t, policy(), up, nil)
	r := e.raw(http.MethodGet, "/text")
	if r.xcache() != gateway.Miss || r.header.Get("Content-Encoding") != "" || r.body != plainBody {
		t.Fatalf("miss: X-Cache %q, Content-Encoding %q, %d bytes; want MISS, none, the %d decoded", r.xcache(), r.header.Get("Content-Encoding"), len(r.body), len(plainBody))
	}
	en := e.entries()
	if len(en) != 1 || en[0].Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("stored %d entries; want the gzip one as the upstream sent it", len(en))
	}
	r = e.raw(http.MethodGet, "/text", "Accept-Encoding", "gzip")
	if r.xcache() != gateway.Hit || r.header.Get("Content-Encoding") != "gzip" || plainOf(t, r) != plainBody {
		t.Fatalf("hit with gzip: X-Cache %q, Content-Encoding %q", r.xcache(), r.header.Get("Content-Encoding"))
	}
}

func TestUpstreamIsAskedOnlyForServedCodings(t *testing.T) {
	up := &codingUpstream{}
	e := newEnv(t, policy(), up, nil)
	cases := []struct{ client, upstream string }{
		{"gzip, deflate, br", "br, gzip"},
		{"", "identity"},
		{"deflate, compress", "identity"},
		{"*", "br, gzip, zstd"},
		{"*, gzip;q=0", "br, zstd"},
		{"x-gzip", "gzip"},
		{"zstd;q=0.000, gzip;q=0.001", "gzip"},
		{"gzip;q=0, br;q=0.0", "identity"},
		{"ZSTD, Br", "br, zstd"},
	}
	for i, c := range cases {
		var h []string
		if c.client != "" {
			h = []string{"Accept-Encoding", c.client}
		}
		e.raw(http.MethodGet, "/text?case="+strconv.Itoa(i), h...)
	}
	seen := up.calls()
	if len(seen) != len(cases) {
		t.Fatalf("upstream calls = %d, want %d", len(seen), len(cases))
	}
	for i, c := range cases {
		if seen[i] != c.upstream {
			t.Errorf("client Accept-Encoding %q: upstream got %q, want %q", c.client, seen[i], c.upstream)
		}
	}
}

func TestCorruptEncodedBodyIsNotStored(t *testing.T) {
	up := &codingUpstream{always: "gzip", corrupt: true}
	e := newEnv(t, policy(), up, nil)
	for _, accept := range []string{"gzip", ""} {
		r := e.raw(http.MethodGet, "/text", "Accept-Encoding", accept)
		wantJSONError(t, r, http.StatusBadGateway, "bad_upstream_encoding")
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("stored %d entries from a corrupt body, want none", n)
	}
	if got := len(up.calls()); got != 2 {
		t.Fatalf("upstream calls = %d, want 2: nothing was stored to answer from", got)
	}
}

func TestCorruptUnstoredBodyIsNotSentToAClientThatMustDecodeIt(t *testing.T) {
	// A 404 is not stored (allowable_codes), so it reaches the client
	// without the check at store time: decoding it for the client fails.
	up := &codingUpstream{always: "gzip", corrupt: true, status: http.StatusNotFound}
	e := newEnv(t, policy(), up, nil)
	wantJSONError(t, e.raw(http.MethodGet, "/text"), http.StatusBadGateway, "bad_upstream_encoding")
	// A client that accepts gzip gets what the upstream sent, as from it.
	if r := e.raw(http.MethodGet, "/text", "Accept-Encoding", "gzip"); r.status != http.StatusNotFound || r.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("client with gzip: status %d, Content-Encoding %q; want the upstream's 404 as sent", r.status, r.header.Get("Content-Encoding"))
	}
}

func wantJSONError(t *testing.T, r result, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (body %.200q)", r.status, status, r.body)
	}
	var body struct{ Error, Code string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("body %.200q is not a JSON error: %v", r.body, err)
	}
	if body.Code != code || body.Error == "" {
		t.Fatalf("error = %+v, want code %q and a message", body, code)
	}
}
