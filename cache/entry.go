package cache

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// Entry is one stored response together with the request that produced it.
//
// The URL, request headers and request body are stored already redacted:
// ignored parameters and credentials never reach a backend.
type Entry struct {
	// Key identifies the entry within its backend. It is an opaque,
	// URL-safe string (see MakeKey).
	Key string
	// BaseKey groups the variants of one resource: entries that differ only
	// by the request headers named in the response's Vary share a BaseKey.
	// For an entry without variants, BaseKey == Key.
	BaseKey string
	// Upstream is the configured upstream name the entry was fetched from.
	Upstream string
	// Method is the request method (GET, HEAD, POST...).
	Method string
	// URL is the normalized, redacted upstream URL.
	URL string
	// RequestHeader holds the request headers that took part in the key
	// (match_headers and Vary), redacted. The gateway also records there,
	// as REDACTED, each credential header the request carried, and the
	// Content-Type of a stored RequestBody, so that an admin revalidation
	// can tell whether it can send the same request again.
	RequestHeader http.Header
	// RequestBody is the body of the request that produced a non-GET
	// entry (a cached POST, say), redacted like the URL: an admin
	// revalidation sends it again. Nil when the request had no body, and
	// in listings that do not ask for bodies.
	RequestBody []byte
	// Status is the response status code.
	Status int
	// Header holds the response headers as stored (hop-by-hop removed).
	Header http.Header
	// Body is the complete response body. Listing leaves it nil unless the
	// query asks for bodies.
	Body []byte
	// Size is len(Body), kept separately so listings can show it without
	// loading the body.
	Size int64
	// ContentType is the media type of the response without parameters,
	// kept for filtering.
	ContentType string
	// RequestTime and Created (the response time) bound the exchange with
	// the upstream; RFC 9111 section 4.2.3 computes Age from them.
	RequestTime time.Time
	Created     time.Time
	// Expires is when the entry stops being fresh. The zero Time means never.
	Expires time.Time
	// ETag and LastModified are the validators used to revalidate.
	ETag         string
	LastModified string
	// Hits counts the requests answered from this entry; LastHit is the
	// latest one (zero if never hit).
	Hits    int64
	LastHit time.Time
	// Reason explains in words why the entry got its expiry (which rule or
	// header won), for operators asking "why".
	Reason string
}

// entryOverhead approximates what an entry costs in memory beyond its
// strings, headers and bodies: the struct, its map slot and list element.
const entryOverhead = 512

// Footprint approximates the bytes e holds in memory: its bodies, its
// strings, its headers and a fixed overhead. A cap on memory counts this,
// not the body alone, or a million small entries would pass any cap.
func (e *Entry) Footprint() int64 {
	n := int64(entryOverhead + len(e.Body) + len(e.RequestBody) + len(e.Key) + len(e.BaseKey) +
		len(e.Upstream) + len(e.Method) + len(e.URL) + len(e.ContentType) + len(e.ETag) +
		len(e.LastModified) + len(e.Reason))
	for _, h := range []http.Header{e.Header, e.RequestHeader} {
		for name, vals := range h {
			n += int64(len(name)) + 16
			for _, v := range vals {
				n += int64(len(v)) + 16
			}
		}
	}
	return n
}

// Never reports whether the entry never expires.
func (e *Entry) Never() bool { return e.Expires.IsZero() }

// IsExpired reports whether the entry is stale at now.
func (e *Entry) IsExpired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// Clone returns a deep copy of e, sharing nothing with it.
func (e *Entry) Clone() *Entry {
	if e == nil {
		return nil
	}
	c := *e
	c.RequestHeader = e.RequestHeader.Clone()
	c.Header = e.Header.Clone()
	if e.Body != nil {
		c.Body = append([]byte(nil), e.Body...)
	}
	if e.RequestBody != nil {
		c.RequestBody = append([]byte(nil), e.RequestBody...)
	}
	return &c
}

// WithoutBody returns a shallow copy of e whose Body and RequestBody are
// nil; listings use it.
func (e *Entry) WithoutBody() *Entry {
	c := *e
	c.Body = nil
	c.RequestBody = nil
	return &c
}

// MediaType returns the media type of a Content-Type header value, lower
// case and without parameters ("application/json; charset=utf-8" gives
// "application/json").
func MediaType(contentType string) string {
	if i := strings.IndexByte(contentType, ';'); i >= 0 {
		contentType = contentType[:i]
	}
	return strings.ToLower(strings.TrimSpace(contentType))
}

// MakeKey hashes the given parts into an opaque, URL-safe key of 32
// characters. Parts are length-prefixed so that ("ab","c") and ("a","bc")
// differ.
func MakeKey(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		l := len(p)
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:24])
}

// ValidKey reports whether s has the shape of a key made by MakeKey: only
// URL-safe base64 characters, 1 to 128 of them. Anything reaching a backend
// by key (from a URL, a file, an import) is checked with it first, so a key
// can never name a path or inject a query.
func ValidKey(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}
