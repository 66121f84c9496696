package transfer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cachegate/cachegate/cache"
)

// Format names an export format.
type Format string

// The export formats.
const (
	// NDJSON is cachegate's own format (see the package documentation); it
	// is the zero value's meaning too, and the only one Import reads.
	NDJSON Format = "ndjson"
	// HAR is HTTP Archive 1.2, for browsers' dev tools and mocking tools.
	HAR Format = "har"
)

// ParseFormat reads "ndjson" or "har".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case NDJSON, HAR:
		return Format(s), nil
	}
	return "", fmt.Errorf("unknown format %q (accepted: ndjson, har)", s)
}

// FormatName and Version identify the NDJSON format in its header line.
const (
	FormatName = "cachegate-export"
	Version    = 1
)

// ExportOptions configure Export.
type ExportOptions struct {
	// Format is NDJSON (the default when empty) or HAR.
	Format Format
	// Filter selects the entries to export; the zero Filter exports all.
	Filter cache.Filter
	// Progress, when set, is called after every entry, on the calling
	// goroutine; it should be quick.
	Progress func(Progress)
}

// Export writes the entries of b that match opts.Filter to w in
// opts.Format, streaming: it holds a bounded chunk of entries whatever
// the size of the cache, and writes to w as it goes (buffered, flushed at
// the end). It returns an error when the backend or w fails or ctx ends
// (wrapping ctx.Err()); what was written until then is an incomplete file.
func Export(ctx context.Context, b cache.Backend, w io.Writer, opts ExportOptions) (Result, error) {
	t := newTracker(opts.Progress)
	format := opts.Format
	if format == "" {
		format = NDJSON
	}
	if _, err := ParseFormat(string(format)); err != nil {
		return t.result(), fmt.Errorf("transfer: export: %w", err)
	}
	f := pin(opts.Filter)
	totals, err := b.Count(ctx, f)
	if err != nil {
		return t.result(), fmt.Errorf("transfer: export: count: %w", err)
	}
	t.res.Total, t.res.TotalBytes = totals.Entries, totals.Bytes
	t.progress()

	bw := bufio.NewWriterSize(w, 64<<10)
	var enc entryEncoder
	if format == HAR {
		enc = newHARWriter(bw)
	} else {
		enc = &ndjsonWriter{w: bw}
	}
	if err := enc.begin(t.start, f); err != nil {
		return t.result(), fmt.Errorf("transfer: export: write: %w", err)
	}
	err = walk(ctx, b, f, func(e *cache.Entry) error {
		if err := enc.entry(e); err != nil {
			return fmt.Errorf("write %q: %w", e.Key, err)
		}
		t.done(int64(len(e.Body)))
		return nil
	})
	if err != nil {
		// Flush what was written so a reader sees where it stopped.
		bw.Flush()
		return t.result(), fmt.Errorf("transfer: export: %w", err)
	}
	if err := enc.end(); err != nil {
		return t.result(), fmt.Errorf("transfer: export: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return t.result(), fmt.Errorf("transfer: export: write: %w", err)
	}
	return t.result(), nil
}

// entryEncoder writes one export format.
type entryEncoder interface {
	begin(exportedAt time.Time, f cache.Filter) error
	entry(e *cache.Entry) error
	end() error
}

// header is the first line of an NDJSON export.
type header struct {
	Format     string     `json:"format"`
	Version    int        `json:"version"`
	ExportedAt time.Time  `json:"exported_at"`
	Filter     filterJSON `json:"filter"`
}

// filterJSON is cache.Filter as the header records it.
type filterJSON struct {
	Keys          []string   `json:"keys,omitempty"`
	BaseKey       string     `json:"base_key,omitempty"`
	Upstream      string     `json:"upstream,omitempty"`
	URL           string     `json:"url,omitempty"`
	Method        string     `json:"method,omitempty"`
	Status        int        `json:"status,omitempty"`
	ContentType   string     `json:"content_type,omitempty"`
	Freshness     string     `json:"freshness,omitempty"`
	Now           *time.Time `json:"now,omitempty"`
	MinSize       int64      `json:"min_size,omitempty"`
	MaxSize       int64      `json:"max_size,omitempty"`
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
	ExpiresAfter  *time.Time `json:"expires_after,omitempty"`
	ExpiresBefore *time.Time `json:"expires_before,omitempty"`
	Reason        string     `json:"reason,omitempty"`
}

func toFilterJSON(f cache.Filter) filterJSON {
	j := filterJSON{
		Keys: f.Keys, BaseKey: f.BaseKey, Upstream: f.Upstream, URL: f.URL,
		Method: f.Method, Status: f.Status, ContentType: f.ContentType,
		Freshness: string(f.Freshness), MinSize: f.MinSize, MaxSize: f.MaxSize,
		CreatedAfter: timePtr(f.CreatedAfter), CreatedBefore: timePtr(f.CreatedBefore),
		ExpiresAfter: timePtr(f.ExpiresAfter), ExpiresBefore: timePtr(f.ExpiresBefore),
		Reason: f.Reason,
	}
	if f.Freshness != cache.AnyFreshness {
		j.Now = timePtr(f.Now)
	}
	return j
}

// record is one entry line of the NDJSON format, both ways. Export leaves
// Body nil and streams body_base64 itself, as the last field.
type record struct {
	Key            string      `json:"key"`
	BaseKey        string      `json:"base_key"`
	Upstream       string      `json:"upstream"`
	Method         string      `json:"method"`
	URL            string      `json:"url"`
	RequestHeaders http.Header `json:"request_headers"`
	Status         int         `json:"status"`
	Headers        http.Header `json:"headers"`
	ContentType    string      `json:"content_type"`
	Size           *int64      `json:"size"`
	RequestTime    *time.Time  `json:"request_time"`
	Created        *time.Time  `json:"created"`
	Expires        *time.Time  `json:"expires"`
	ETag           string      `json:"etag"`
	LastModified   string      `json:"last_modified"`
	Hits           int64       `json:"hits"`
	LastHit        *time.Time  `json:"last_hit"`
	Reason         string      `json:"reason"`
	// RequestBody is the body of the request behind a non-GET entry;
	// optional, so files written before it existed still import.
	RequestBody *[]byte `json:"request_body_base64,omitempty"`
	Body        *[]byte `json:"body_base64,omitempty"`
}

// timePtr returns t in UTC, or nil for the zero time (null in the file).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func toRecord(e *cache.Entry) *record {
	size := int64(len(e.Body))
	created := e.Created.UTC()
	return &record{
		Key: e.Key, BaseKey: e.BaseKey, Upstream: e.Upstream, Method: e.Method, URL: e.URL,
		RequestHeaders: e.RequestHeader, Status: e.Status, Headers: e.Header,
		ContentType: e.ContentType, Size: &size,
		RequestTime: timePtr(e.RequestTime), Created: &created, Expires: timePtr(e.Expires),
		ETag: e.ETag, LastModified: e.LastModified, Hits: e.Hits, LastHit: timePtr(e.LastHit),
		Reason: e.Reason, RequestBody: optBytes(e.RequestBody),
	}
}

// optBytes returns nil for an empty p, so the field is left out.
func optBytes(p []byte) *[]byte {
	if len(p) == 0 {
		return nil
	}
	return &p
}

// ndjsonWriter writes the NDJSON format.
type ndjsonWriter struct {
	w   *bufio.Writer
	buf bytes.Buffer
}

// encodeJSON marshals v into buf without escaping <, > and &, which are
// common in URLs and headers and harmless in a file.
func encodeJSON(buf *bytes.Buffer, v any) error {
	buf.Reset()
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	return enc.Encode(v) // ends in '\n'
}

func (n *ndjsonWriter) begin(exportedAt time.Time, f cache.Filter) error {
	if err := encodeJSON(&n.buf, header{Format: FormatName, Version: Version, ExportedAt: exportedAt.UTC(), Filter: toFilterJSON(f)}); err != nil {
		return err
	}
	_, err := n.w.Write(n.buf.Bytes())
	return err
}

func (n *ndjsonWriter) entry(e *cache.Entry) error {
	if err := encodeJSON(&n.buf, toRecord(e)); err != nil {
		return err
	}
	// Splice the body in as the last field, base64-encoding it straight
	// into the output: a large body is never held twice.
	meta := n.buf.Bytes()
	meta = meta[:len(meta)-len("}\n")]
	if _, err := n.w.Write(meta); err != nil {
		return err
	}
	if _, err := n.w.WriteString(`,"body_base64":"`); err != nil {
		return err
	}
	b64 := base64.NewEncoder(base64.StdEncoding, n.w)
	if _, err := b64.Write(e.Body); err != nil {
		return err
	}
	if err := b64.Close(); err != nil {
		return err
	}
	_, err := n.w.WriteString("\"}\n")
	return err
}

func (n *ndjsonWriter) end() error { return nil }
