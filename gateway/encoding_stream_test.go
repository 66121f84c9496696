package gateway_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/cachegate/cachegate/cache"
	"github.com/cachegate/cachegate/gateway"
	"github.com/klauspost/compress/zstd"
)

// bigPlain is a body whose every coding is larger than what the gateway
// reads before answering, so that a miss streams it.
var bigPlain = func() string {
	b := make([]byte, 200<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b) // 400 KiB of text that compresses to half
}()

func encodeAs(t *testing.T, coding, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	case "deflate": // the zlib format RFC 9110 names
		w = zlib.NewWriter(&buf)
	case "raw-deflate": // what some servers send as deflate
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	default:
		t.Fatalf("no coding %q", coding)
	}
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bigCodedUpstream sends body with Content-Encoding coding whatever the
// request accepts, with its length or (chunked) without.
func bigCodedUpstream(coding string, body []byte, withLength bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Encoding", coding)
		h.Set("ETag", `"big"`)
		if withLength {
			h.Set("Content-Length", strconv.Itoa(len(body)))
		}
		w.WriteHeader(http.StatusOK)
		for b := body; len(b) > 0; {
			n := min(len(b), 16<<10)
			w.Write(b[:n])
			w.(http.Flusher).Flush()
			b = b[n:]
		}
	})
}

// A miss that streams a body encoded with a coding the client did not
// ask for sends it decoded as it arrives, and stores it as it came.
func TestStreamedMissIsDecodedForAClientWithoutTheCoding(t *testing.T) {
	for _, coding := range []string{"gzip", "br", "zstd", "deflate", "raw-deflate"} {
		for _, withLength := range []bool{true, false} {
			t.Run(coding+"/length="+strconv.FormatBool(withLength), func(t *testing.T) {
				sent := coding
				if coding == "raw-deflate" {
					sent = "deflate"
				}
				coded := encodeAs(t, coding, bigPlain)
				if len(coded) <= 64<<10 {
					t.Fatalf("the %s body is %d bytes: too small to stream", coding, len(coded))
				}
				e := newEnv(t, policy(), bigCodedUpstream(sent, coded, withLength), nil)
				r := e.raw(http.MethodGet, "/big")
				if r.xcache() != gateway.Miss || r.header.Get("Content-Encoding") != "" || r.body != bigPlain {
					t.Fatalf("miss: X-Cache %q, Content-Encoding %q, %d bytes; want MISS, none, the %d decoded", r.xcache(), r.header.Get("Content-Encoding"), len(r.body), len(bigPlain))
				}
				if got := r.header.Get("Etag"); got != `W/"big"` {
					t.Errorf("ETag %q, want the weak W/\"big\": it validates the encoded body", got)
				}
				if cl := r.header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(bigPlain)) {
					t.Errorf("Content-Length %s for a %d-byte decoded body", cl, len(bigPlain))
				}
				en := e.entries()
				if len(en) != 1 {
					t.Fatalf("stored %d entries, want 1", len(en))
				}
				stored, ok, err := e.backend.Get(context.Background(), en[0].Key)
				if err != nil || !ok || stored.Header.Get("Content-Encoding") != sent || !bytes.Equal(stored.Body, coded) {
					t.Fatalf("stored entry (found %v, %v): want the %s one as the upstream sent it", ok, err, sent)
				}
				r = e.raw(http.MethodGet, "/big", "Accept-Encoding", "gzip, br, zstd, deflate")
				if r.xcache() != gateway.Hit || r.header.Get("Content-Encoding") != sent || r.body != string(coded) {
					t.Fatalf("hit for a client with the coding: X-Cache %q, Content-Encoding %q", r.xcache(), r.header.Get("Content-Encoding"))
				}
			})
		}
	}
}

// A client that accepts the coding gets the streamed bytes as they came;
// a HEAD gets the head a GET would.
func TestStreamedMissKeepsTheCodingForAClientThatAcceptsIt(t *testing.T) {
	coded := encodeAs(t, "gzip", bigPlain)
	e := newEnv(t, policy(func(p *cache.Policy) { p.MaxBodySize = 64 << 10 }), bigCodedUpstream("gzip", coded, true), nil)
	r := e.raw(http.MethodGet, "/big", "Accept-Encoding", "gzip")
	if r.header.Get("Content-Encoding") != "gzip" || r.body != string(coded) || r.header.Get("Content-Length") != strconv.Itoa(len(coded)) {
		t.Fatalf("Content-Encoding %q, Content-Length %q, %d bytes; want the %d gzip bytes", r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), len(r.body), len(coded))
	}
	// Too large to store: each request streams, decoded or not.
	r = e.raw(http.MethodGet, "/big")
	if r.xcache() != gateway.Miss || r.header.Get("Content-Encoding") != "" || r.body != bigPlain {
		t.Fatalf("uncollected miss: X-Cache %q, Content-Encoding %q, %d bytes", r.xcache(), r.header.Get("Content-Encoding"), len(r.body))
	}
	r = e.raw(http.MethodHead, "/big")
	if r.header.Get("Content-Encoding") != "" || r.header.Get("Content-Length") != "" || r.body != "" {
		t.Fatalf("HEAD: Content-Encoding %q, Content-Length %q, %d bytes", r.header.Get("Content-Encoding"), r.header.Get("Content-Length"), len(r.body))
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored, want none (over max_body_size)", n)
	}
}

// A streamed body that stops decoding part way cuts the client's
// connection (its head is gone already) and stores nothing; one that
// does not decode from its first bytes is a 502 saying why.
func TestStreamedMissThatDoesNotDecode(t *testing.T) {
	coded := encodeAs(t, "gzip", bigPlain)
	broken := append([]byte(nil), coded...)
	for i := 100 << 10; i < 110<<10; i++ {
		broken[i] ^= 0x5a
	}
	e := newEnv(t, policy(), bigCodedUpstream("gzip", broken, true), nil)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, e.srv.URL+"/fetch/up/big", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rawTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil && string(b) == bigPlain {
		t.Fatal("a corrupt body was answered whole")
	}
	if err == nil {
		t.Fatalf("the client read %d bytes to a clean end; want the connection cut", len(b))
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored from a body that does not decode", n)
	}

	garbage := bytes.Repeat([]byte("not gzip at all "), 10<<10)
	e = newEnv(t, policy(), bigCodedUpstream("gzip", garbage, true), nil)
	r := e.raw(http.MethodGet, "/garbage")
	if r.status != http.StatusBadGateway || !bytes.Contains([]byte(r.body), []byte(`"bad_upstream_encoding"`)) {
		t.Fatalf("%d %s; want 502 bad_upstream_encoding", r.status, r.body)
	}
	if n := len(e.entries()); n != 0 {
		t.Fatalf("%d entries stored from a body that does not decode", n)
	}
}
