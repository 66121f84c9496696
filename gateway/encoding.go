package gateway

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/cachegate/cachegate/cache"
	"github.com/klauspost/compress/zstd"
)

// The content codings the gateway serves: it can decode each of them for a
// client that does not accept it, so they are the only ones it asks its
// upstreams for, and an Accept-Encoding counts in a cache key only as the
// set of them it accepts.
const (
	codingBr codingSet = 1 << iota
	codingGzip
	codingZstd
)

// codingSet is a set of the served content codings.
type codingSet uint8

// codingSetNames is each set's Accept-Encoding as the gateway normalises
// it: the names sorted, or identity for none. Constants, so that
// normalising allocates nothing on the hit path.
var codingSetNames = [8]string{
	"identity", "br", "gzip", "br, gzip", "zstd", "br, zstd", "gzip, zstd", "br, gzip, zstd",
}

// acceptedCodings returns the served codings a request's Accept-Encoding
// allows: those it names with a non-zero q, and, when it has a "*" with a
// non-zero q, those it does not name. A request without the field, or with
// an empty one, accepts none (identity only): RFC 9110 section 12.5.3 lets a
// server use any coding then, but promises no client can read it.
func acceptedCodings(h http.Header) codingSet {
	// One pass over the field: this runs twice per hit on an entry that
	// varies on Accept-Encoding.
	var named, accepted codingSet
	star := false
	for _, line := range h["Accept-Encoding"] {
		for line != "" {
			var name, params string
			name, params, line = nextCoding(line)
			var bit codingSet
			switch {
			case name == "*":
				star = !zeroQ(params)
				continue
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				bit = codingGzip
			case strings.EqualFold(name, "br"):
				bit = codingBr
			case strings.EqualFold(name, "zstd"):
				bit = codingZstd
			default:
				continue
			}
			if named&bit != 0 {
				continue // the first element for a coding decides, as in acceptsCoding
			}
			named |= bit
			if !zeroQ(params) {
				accepted |= bit
			}
		}
	}
	if star {
		accepted |= (codingBr | codingGzip | codingZstd) &^ named
	}
	return accepted
}

// normalizedAcceptEncoding is the Accept-Encoding the gateway keys on and
// sends upstream for a request: "gzip, deflate, br" and "br;q=0.5, gzip"
// both give "br, gzip".
func normalizedAcceptEncoding(h http.Header) string {
	return codingSetNames[acceptedCodings(h)]
}

// nextCoding splits the first element off an Accept-Encoding line: the
// coding's name, its parameters, and the rest of the line.
func nextCoding(line string) (name, params, rest string) {
	elem, rest, _ := strings.Cut(line, ",")
	name, params, _ = strings.Cut(elem, ";")
	return strings.TrimSpace(name), params, rest
}

// acceptsCoding reports whether a request's Accept-Encoding allows the
// content coding (lower case; x-gzip stands for gzip, RFC 9110 section
// 8.4.1.3). The coding's own element decides; failing that, "*". identity
// is always accepted: a client that refuses it gets it all the same, as
// from most servers, rather than a 415.
func acceptsCoding(h http.Header, coding string) bool {
	if coding == "identity" || coding == "" {
		return true
	}
	if coding == "x-gzip" {
		coding = "gzip"
	}
	star := false
	for _, line := range h["Accept-Encoding"] {
		for line != "" {
			var name, params string
			name, params, line = nextCoding(line)
			if name == "" {
				continue
			}
			if strings.EqualFold(name, "x-gzip") {
				name = "gzip"
			}
			switch {
			case strings.EqualFold(name, coding):
				return !zeroQ(params)
			case name == "*":
				star = !zeroQ(params)
			}
		}
	}
	return star
}

// zeroQ reports whether an element's parameters give it q=0 ("0", "0.0",
// "0.00", "0.000"): not acceptable. A malformed q counts as non-zero.
func zeroQ(params string) bool {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		if v == "" || v[0] != '0' || len(v) > 5 {
			return false
		}
		if len(v) == 1 {
			return true
		}
		if v[1] != '.' {
			return false
		}
		return strings.Trim(v[2:], "0") == ""
	}
	return false
}

// isAcceptEncoding reports whether a header name is Accept-Encoding, in
// any case (match_headers names may be written either way).
func isAcceptEncoding(name string) bool { return strings.EqualFold(name, "Accept-Encoding") }

// contentCodings returns the codings a response's Content-Encoding lists,
// in the order they were applied, identity left out.
func contentCodings(h http.Header) []string {
	var codings []string
	for _, line := range h["Content-Encoding"] {
		for _, c := range strings.Split(line, ",") {
			if c = strings.ToLower(strings.TrimSpace(c)); c != "" && c != "identity" {
				codings = append(codings, c)
			}
		}
	}
	return codings
}

// needsDecoding reports whether the stored response e is encoded with a
// content coding that r does not accept, so that it must be answered
// decoded (decodeForClient) and not as stored. Every path that answers
// from an entry asks it; it costs one map lookup for an entry stored
// without Content-Encoding.
//
// A coding the gateway cannot decode (compress, or one it does not know)
// is sent as stored, as the upstream chose to: there is nothing else to
// send.
func needsDecoding(r *http.Request, e *cache.Entry) bool {
	return codedAgainst(r, e.Header)
}

// codedAgainst reports whether a response with header h is encoded with a
// content coding that r does not accept and that the gateway can decode:
// needsDecoding for a response not yet stored.
func codedAgainst(r *http.Request, h http.Header) bool {
	lines := h["Content-Encoding"]
	if len(lines) == 0 {
		return false
	}
	if len(lines) == 1 && !strings.Contains(lines[0], ",") {
		// The usual one coding: no slice to build.
		c := strings.ToLower(strings.TrimSpace(lines[0]))
		return decodable(c) && !acceptsCoding(r.Header, c)
	}
	codings := contentCodings(h)
	need := false
	for _, c := range codings {
		if !decodable(c) {
			return false
		}
		need = need || !acceptsCoding(r.Header, c)
	}
	return need
}

// decodable reports whether the gateway can undo a content coding.
func decodable(coding string) bool {
	switch coding {
	case "gzip", "x-gzip", "br", "zstd", "deflate":
		return true
	}
	return false
}

// maxDecodedBody bounds a body the gateway decodes for a client (the
// default max_body_size): a small compressed body can expand a
// thousandfold, and the decoded copy is held in memory while it is sent.
const maxDecodedBody = 64 << 20

// encodingError is a response body that its Content-Encoding does not
// describe (corrupt, cut short, or a coding the gateway cannot decode),
// or that decodes to more than maxDecodedBody.
type encodingError struct {
	Coding string
	Err    error
}

func (e *encodingError) Error() string {
	return fmt.Sprintf("response body cannot be decoded from its Content-Encoding %q: %v", e.Coding, e.Err)
}

func (e *encodingError) Unwrap() error { return e.Err }

var (
	errUnsupportedCoding = errors.New("the gateway does not decode this coding")
	errDecodedTooLarge   = errors.New("decoded body larger than " + strconv.Itoa(maxDecodedBody>>20) + " MiB")
)

// decodeBody undoes the content codings listed in h, last applied first,
// and returns the identity body.
func decodeBody(h http.Header, body []byte) ([]byte, error) {
	codings := contentCodings(h)
	for i := len(codings) - 1; i >= 0; i-- {
		var err error
		if body, err = decodeOne(codings[i], body, maxDecodedBody); err != nil {
			return nil, &encodingError{Coding: strings.Join(codings, ", "), Err: err}
		}
	}
	return body, nil
}

// decodeOne decodes body from one content coding, to at most limit bytes.
func decodeOne(coding string, body []byte, limit int64) ([]byte, error) {
	r, err := codingReader(coding, bytes.NewReader(body), limit)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, errDecodedTooLarge
	}
	return out, nil
}

// decoder returns a reader of the identity body of src, a body encoded
// with the content codings h lists (all decodable), last applied first.
func decoder(h http.Header, src io.Reader) (io.ReadCloser, error) {
	codings := contentCodings(h)
	r := io.NopCloser(src)
	var closers []io.Closer
	for i := len(codings) - 1; i >= 0; i-- {
		next, err := codingReader(codings[i], r, maxDecodedBody)
		var up *bodyReadError
		if errors.As(err, &up) {
			return nil, err
		}
		if err != nil {
			return nil, &encodingError{Coding: strings.Join(codings, ", "), Err: err}
		}
		closers = append(closers, next)
		r = next
	}
	return &decoded{ReadCloser: r, closers: closers, coding: strings.Join(codings, ", ")}, nil
}

// decoded is the output of a chain of decoders; a read error is an
// encodingError and Close closes every decoder of the chain.
type decoded struct {
	io.ReadCloser
	closers []io.Closer
	coding  string
}

func (d *decoded) Read(p []byte) (int, error) {
	n, err := d.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var up *bodyReadError
		if !errors.As(err, &up) {
			err = &encodingError{Coding: d.coding, Err: err}
		}
	}
	return n, err
}

func (d *decoded) Close() error {
	for _, c := range d.closers {
		c.Close()
	}
	return nil
}

// bodyReadError is an upstream body that failed to read, as opposed to
// one that read but did not decode.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

// codingReader returns a reader that decodes src from one content coding;
// window is the most memory a zstd frame may ask for.
func codingReader(coding string, src io.Reader, window int64) (io.ReadCloser, error) {
	switch coding {
	case "gzip", "x-gzip":
		return gzip.NewReader(src)
	case "br":
		return io.NopCloser(brotli.NewReader(src)), nil
	case "zstd":
		// One goroutine and a bounded window: decoding runs per request.
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(window)))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	case "deflate":
		// RFC 9110 section 8.4.1.2: the zlib format; some servers send a
		// raw deflate stream instead, which browsers accept too. A zlib
		// stream starts with a header whose two bytes are a multiple of
		// 31 and name the deflate method.
		br := bufio.NewReader(src)
		if h, err := br.Peek(2); err == nil && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
			return zlib.NewReader(br)
		}
		return flate.NewReader(br), nil
	}
	return nil, errUnsupportedCoding
}

// checkEncoding reports a body that does not decode from the codings its
// header lists, before it is stored: a damaged body is never stored. A
// body that decodes to more than maxDecodedBody is stored (clients that
// accept its coding can use it) and refused only to those that do not.
//
// A coding the gateway cannot decode is stored unchecked, and is sent as
// stored (see needsDecoding).
func checkEncoding(h http.Header, body []byte) error {
	if len(h["Content-Encoding"]) == 0 {
		return nil
	}
	for _, c := range contentCodings(h) {
		if !decodable(c) {
			return nil
		}
	}
	_, err := decodeBody(h, body)
	if err != nil && errors.Is(err, errDecodedTooLarge) {
		return nil
	}
	return err
}

// decodeForClient returns the entry e, and the header to answer with
// (from header), decoded for a client that does not accept e's coding:
// Content-Encoding removed, the length that of the decoded body, and the
// ETag weak, as a validator of the encoded body only (the practice of
// nginx's gunzip and of Apache's mod_deflate). When the body cannot be
// decoded it answers 502 with a JSON error and returns nil.
func decodeForClient(w http.ResponseWriter, e *cache.Entry, header http.Header) (*cache.Entry, http.Header) {
	body, err := decodeBody(e.Header, e.Body)
	if err != nil {
		writeError(w, http.StatusBadGateway, "bad_upstream_encoding", err.Error(), e.Upstream)
		return nil, nil
	}
	d := *e
	d.Body, d.Size = body, int64(len(body))
	d.Header = decodedHeader(e.Header)
	d.ETag = d.Header.Get("Etag")
	if header != nil {
		header = decodedHeader(header)
	}
	return &d, header
}

// decodedHeader is h for the decoded body.
func decodedHeader(h http.Header) http.Header {
	h = h.Clone()
	// Content-Digest and Content-MD5 describe the encoded bytes.
	for _, name := range []string{"Content-Encoding", "Content-Length", "Content-Digest", "Content-Md5", "Repr-Digest"} {
		delete(h, name)
	}
	if etag := h.Get("Etag"); etag != "" && !strings.HasPrefix(etag, "W/") {
		h.Set("Etag", "W/"+etag)
	}
	return h
}
