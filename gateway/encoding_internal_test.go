package gateway

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"net/http"
	"testing"

	"github.com/cachegate/cachegate/cache"
	"github.com/klauspost/compress/zstd"
)

func TestNormalizedAcceptEncoding(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string // nil: no field
		want  string
	}{
		{"absent", nil, "identity"},
		{"empty", []string{""}, "identity"},
		{"browser", []string{"gzip, deflate, br, zstd"}, "br, gzip, zstd"},
		{"order does not count", []string{"br, gzip"}, "br, gzip"},
		{"two field lines", []string{"gzip", "br"}, "br, gzip"},
		{"q=0 refuses", []string{"gzip;q=0, br"}, "br"},
		{"q=0.000 refuses", []string{"gzip; q=0.000, br;q=0.001"}, "br"},
		{"q=1 accepts", []string{"gzip;q=1.0"}, "gzip"},
		{"star", []string{"*"}, "br, gzip, zstd"},
		{"star refused", []string{"*;q=0"}, "identity"},
		{"named beats star", []string{"*;q=0, gzip"}, "gzip"},
		{"star with a refusal", []string{"br;q=0, *"}, "gzip, zstd"},
		{"x-gzip", []string{"x-gzip"}, "gzip"},
		{"case", []string{"GZip, BR"}, "br, gzip"},
		{"only unserved codings", []string{"deflate, compress, identity"}, "identity"},
		{"malformed q counts as accepted", []string{"gzip;q=abc"}, "gzip"},
		{"empty elements", []string{" , gzip,,"}, "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.lines != nil {
				h["Accept-Encoding"] = tc.lines
			}
			if got := normalizedAcceptEncoding(h); got != tc.want {
				t.Fatalf("normalizedAcceptEncoding(%q) = %q, want %q", tc.lines, got, tc.want)
			}
		})
	}
}

func TestNeedsDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, accept, coding string
		want                 bool
	}{
		{"identity entry", "", "", false},
		{"gzip to a gzip client", "gzip", "gzip", false},
		{"gzip to a client without", "br", "gzip", true},
		{"gzip refused with q=0", "gzip;q=0", "gzip", true},
		{"x-gzip stored", "gzip", "x-gzip", false},
		{"deflate to a client without", "gzip", "deflate", true},
		{"chain, one refused", "gzip", "gzip, br", true},
		{"chain, both accepted", "gzip, br", "gzip, br", false},
		{"unknown coding is sent as stored", "gzip", "compress", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Header: http.Header{}}
			if tc.accept != "" {
				r.Header.Set("Accept-Encoding", tc.accept)
			}
			e := &cache.Entry{Header: http.Header{}}
			if tc.coding != "" {
				e.Header.Set("Content-Encoding", tc.coding)
			}
			if got := needsDecoding(r, e); got != tc.want {
				t.Fatalf("needsDecoding = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecodeBody(t *testing.T) {
	plain := bytes.Repeat([]byte("decoded "), 100)
	var gz, zl bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	zw := zlib.NewWriter(&zl)
	zw.Write(plain)
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zst := enc.EncodeAll(plain, nil)
	enc.Close()
	// gzip applied first, then zstd: decoded in reverse.
	enc2, _ := zstd.NewWriter(nil)
	chain := enc2.EncodeAll(gz.Bytes(), nil)
	enc2.Close()
	for _, tc := range []struct {
		name, coding string
		body         []byte
	}{
		{"gzip", "gzip", gz.Bytes()},
		{"deflate (zlib)", "deflate", zl.Bytes()},
		{"zstd", "zstd", zst},
		{"gzip then zstd", "gzip, zstd", chain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeBody(http.Header{"Content-Encoding": {tc.coding}}, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("decoded %d bytes, want %d", len(got), len(plain))
			}
		})
	}
	if _, err := decodeBody(http.Header{"Content-Encoding": {"gzip"}}, gz.Bytes()[:gz.Len()/2]); err == nil {
		t.Fatal("a cut-off gzip body decoded without error")
	}
}

func TestDecodedBodyIsBounded(t *testing.T) {
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	zeros := make([]byte, 1<<20)
	for i := 0; i < maxDecodedBody>>20+1; i++ {
		gw.Write(zeros)
	}
	gw.Close()
	h := http.Header{"Content-Encoding": {"gzip"}}
	if _, err := decodeBody(h, gz.Bytes()); err == nil {
		t.Fatalf("a %d-byte gzip body decoding past %d bytes was accepted", gz.Len(), maxDecodedBody)
	}
	if err := checkEncoding(h, gz.Bytes()); err != nil {
		t.Fatalf("checkEncoding refused a valid body that only decodes large: %v", err)
	}
}

// BenchmarkNeedsDecoding is what the check costs a hit.
func BenchmarkNeedsDecoding(b *testing.B) {
	r := &http.Request{Header: http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}}
	for _, bc := range []struct {
		name string
		e    *cache.Entry
	}{
		{"identity entry", &cache.Entry{Header: http.Header{"Content-Type": {"application/json"}}}},
		{"gzip entry", &cache.Entry{Header: http.Header{"Content-Encoding": {"gzip"}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if needsDecoding(r, bc.e) {
					b.Fatal("needs decoding")
				}
			}
		})
	}
}

// BenchmarkNormalizedAcceptEncoding is what Vary: Accept-Encoding costs
// a hit per comparison.
func BenchmarkNormalizedAcceptEncoding(b *testing.B) {
	h := http.Header{"Accept-Encoding": {"gzip, deflate, br, zstd"}}
	b.ReportAllocs()
	for b.Loop() {
		if normalizedAcceptEncoding(h) != "br, gzip, zstd" {
			b.Fatal("wrong")
		}
	}
}

// BenchmarkDecodeForClient is what a hit costs a client without gzip: a
// 64 KiB JSON-like body.
func BenchmarkDecodeForClient(b *testing.B) {
	plain := bytes.Repeat([]byte(`{"id":12345,"name":"cachegate","tags":["a","b"]},`), 64<<10/50)
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(plain)
	gw.Close()
	e := &cache.Entry{Header: http.Header{"Content-Encoding": {"gzip"}, "Etag": {`"x"`}}, Body: gz.Bytes()}
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if d, _ := decodeForClient(nil, e, nil); d == nil {
			b.Fatal("decode failed")
		}
	}
}
