package cachetest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// NewEntry returns a complete, valid entry stored under key, with every
// field set, created at T0 and expiring an hour later. Tests adjust the
// fields they care about.
func NewEntry(key string) *cache.Entry {
	body := []byte("body of " + key)
	return &cache.Entry{
		Key:           key,
		BaseKey:       key,
		Upstream:      "demo",
		Method:        http.MethodGet,
		URL:           "https://demo.example/items/" + key,
		RequestHeader: http.Header{"Accept": {"application/json"}},
		Status:        http.StatusOK,
		Header: http.Header{
			"Content-Type": {"application/json"},
			"Etag":         {`"` + key + `"`},
		},
		Body:         body,
		Size:         int64(len(body)),
		ContentType:  "application/json",
		RequestTime:  T0.Add(-10 * time.Millisecond),
		Created:      T0,
		Expires:      T0.Add(time.Hour),
		ETag:         `"` + key + `"`,
		LastModified: "Tue, 02 Jan 2024 03:00:00 GMT",
		Reason:       "expire_after 1h",
	}
}

// SetBody replaces e's body and keeps Size in step with it.
func SetBody(e *cache.Entry, body []byte) *cache.Entry {
	e.Body = body
	e.Size = int64(len(body))
	return e
}

// Diff describes how got differs from want, or returns "" when they are
// equal. Times are compared to within Precision; nil and empty headers or
// bodies are equal.
func Diff(got, want *cache.Entry) string {
	if got == nil || want == nil {
		if got == want {
			return ""
		}
		return fmt.Sprintf("got %v, want %v", got, want)
	}
	var d []string
	str := func(name, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %q, want %q", name, g, w))
		}
	}
	num := func(name string, g, w int64) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %d, want %d", name, g, w))
		}
	}
	tm := func(name string, g, w time.Time) {
		if g.IsZero() != w.IsZero() {
			d = append(d, fmt.Sprintf("%s = %v, want %v (zero means unset/never)", name, g, w))
			return
		}
		if delta := g.Sub(w).Abs(); delta >= Precision {
			d = append(d, fmt.Sprintf("%s = %v, want %v (off by %v)", name, g, w, delta))
		}
	}
	hdr := func(name string, g, w http.Header) {
		if len(g) == 0 && len(w) == 0 {
			return
		}
		if fmt.Sprint(g) != fmt.Sprint(w) { // fmt sorts map keys
			d = append(d, fmt.Sprintf("%s = %v, want %v", name, g, w))
		}
	}
	str("Key", got.Key, want.Key)
	str("BaseKey", got.BaseKey, want.BaseKey)
	str("Upstream", got.Upstream, want.Upstream)
	str("Method", got.Method, want.Method)
	str("URL", got.URL, want.URL)
	hdr("RequestHeader", got.RequestHeader, want.RequestHeader)
	num("Status", int64(got.Status), int64(want.Status))
	hdr("Header", got.Header, want.Header)
	if !bytes.Equal(got.Body, want.Body) {
		d = append(d, fmt.Sprintf("Body = %s, want %s", abbrev(got.Body), abbrev(want.Body)))
	}
	if (got.Body == nil) != (want.Body == nil) && len(want.Body) > 0 {
		d = append(d, "Body nil-ness differs")
	}
	if !bytes.Equal(got.RequestBody, want.RequestBody) {
		d = append(d, fmt.Sprintf("RequestBody = %s, want %s", abbrev(got.RequestBody), abbrev(want.RequestBody)))
	}
	num("Size", got.Size, want.Size)
	str("ContentType", got.ContentType, want.ContentType)
	tm("RequestTime", got.RequestTime, want.RequestTime)
	tm("Created", got.Created, want.Created)
	tm("Expires", got.Expires, want.Expires)
	str("ETag", got.ETag, want.ETag)
	str("LastModified", got.LastModified, want.LastModified)
	num("Hits", got.Hits, want.Hits)
	tm("LastHit", got.LastHit, want.LastHit)
	str("Reason", got.Reason, want.Reason)
	return strings.Join(d, "; ")
}

func abbrev(b []byte) string {
	if b == nil {
		return "nil"
	}
	if len(b) > 40 {
		return fmt.Sprintf("%q... (%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// MustPut stores entries or fails the test.
func MustPut(tb testing.TB, b cache.Backend, entries ...*cache.Entry) {
	tb.Helper()
	for _, e := range entries {
		if err := b.Put(context.Background(), e); err != nil {
			tb.Fatalf("Put(%q): %v", e.Key, err)
		}
	}
}

// MustGet returns the entry under key, failing the test on an error or a
// miss.
func MustGet(tb testing.TB, b cache.Backend, key string) *cache.Entry {
	tb.Helper()
	e, ok, err := b.Get(context.Background(), key)
	if err != nil {
		tb.Fatalf("Get(%q): %v", key, err)
	}
	if !ok {
		tb.Fatalf("Get(%q): miss, want hit", key)
	}
	return e
}

// assertMiss fails the test unless key is absent.
func assertMiss(tb testing.TB, b cache.Backend, key string) {
	tb.Helper()
	e, ok, err := b.Get(context.Background(), key)
	if err != nil {
		tb.Fatalf("Get(%q): %v", key, err)
	}
	if ok || e != nil {
		tb.Fatalf("Get(%q) = %v, %v; want nil, false", key, e, ok)
	}
}

func mustCount(tb testing.TB, b cache.Backend, f cache.Filter) cache.Totals {
	tb.Helper()
	tot, err := b.Count(context.Background(), f)
	if err != nil {
		tb.Fatalf("Count(%+v): %v", f, err)
	}
	return tot
}

// listAll walks every page of q and returns the entries in order, checking
// the paging rules on the way: every page but the last is full, the last
// has an empty Next, and no entry appears twice.
func listAll(tb testing.TB, b cache.Backend, q cache.Query) []*cache.Entry {
	tb.Helper()
	var all []*cache.Entry
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page > 10_000 {
			tb.Fatalf("List(%+v): more than 10000 pages; cursor does not advance", q)
		}
		p, err := b.List(context.Background(), q)
		if err != nil {
			tb.Fatalf("List(%+v) page %d: %v", q, page, err)
		}
		for _, e := range p.Entries {
			if seen[e.Key] {
				tb.Fatalf("List(%+v): key %q on two pages (page %d)", q, e.Key, page)
			}
			seen[e.Key] = true
		}
		all = append(all, p.Entries...)
		if p.Next == "" {
			return all
		}
		if len(p.Entries) != q.PageLimit() {
			tb.Fatalf("List(%+v) page %d: %d entries and a Next cursor; want a full page of %d (Next empty on the last page)",
				q, page, len(p.Entries), q.PageLimit())
		}
		q.Cursor = p.Next
	}
}

func keysOf(entries []*cache.Entry) []string {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys
}
